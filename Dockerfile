# pillcheck on a GPU (falls back to the CPU when none is visible).
#   docker build -t pillcheck .                      # catalog from ./official/ if present, else the demo data
#   docker build --build-arg PILLCHECK_SERVICE_KEY=... -t pillcheck .   # or fetch the official data at build
#   docker run --gpus all -p 7860:7860 pillcheck     # then open http://localhost:7860
# Put the official files (FORMATS.md: 낱알식별 xls, DUR 성분 files, API dumps, the HIRA list) in ./official before building to
# bake the full catalog in. onnxruntime-gpu 1.31 is built for CUDA 13 + cuDNN 9, hence this base.
FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 \
    GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 \
    PILLCHECK_DB=/var/lib/pillcheck/pillcheck.duckdb PILLCHECK_MODELS=/app/models PILLCHECK_REFERENCE=/app/reference_data
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl fonts-nanum \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md app.py ./
COPY src ./src
COPY models ./models
COPY reference_data ./reference_data
COPY scripts ./scripts
# `official/` may be empty or absent from the context: the wildcard keeps COPY from failing.
COPY officia[l] /tmp/official/
ARG PILLCHECK_SERVICE_KEY=""
RUN PILLCHECK_SERVICE_KEY="$PILLCHECK_SERVICE_KEY" scripts/install.sh /opt/venv "$PILLCHECK_DB" /tmp/official \
 && rm -rf /tmp/official \
 && useradd --create-home --uid 10001 pillcheck \
 && chown -R pillcheck /var/lib/pillcheck

USER pillcheck
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD curl -fsS http://127.0.0.1:7860/ >/dev/null || exit 1
CMD ["/opt/venv/bin/pillcheck", "serve", "--host", "0.0.0.0", "--port", "7860"]
