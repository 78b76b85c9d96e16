"""The agent and capability registry: who pays (agent, team, cost centre) and what is paid for, at what price."""
