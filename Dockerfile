# Multi-stage image for `x402-settle serve`. Not built on the development machines (no Docker
# engine there): see the README.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, exactly as requirements.lock pins them (hash-checked; scripts/lock regenerates
# it), in their own layer so a change to app/ alone reuses it. The lock carries setuptools and
# wheel, so the project then builds without fetching anything more.
COPY requirements.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 x402
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    X402_HOST=0.0.0.0 \
    X402_PORT=4021 \
    X402_DATA_DIR=/data
RUN mkdir -p /data && chown x402:x402 /data
USER x402
WORKDIR /home/x402
VOLUME ["/data"]
EXPOSE 4021
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"X402_PORT\"]}/health', timeout=4)"
CMD ["x402-settle", "serve"]
