# birdstream container image.
#   CPU (default):  docker build -t birdstream .
#   CUDA:           docker build -t birdstream:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 .
#                   docker run --gpus all ...   (needs the NVIDIA Container Toolkit on the host)
# torch's CUDA wheels carry their own CUDA runtime, so the slim base serves both; BASE_IMAGE can
# still be swapped for another Debian-based Python 3.11+ image. For a reproducible image, pin it by
# digest: --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest> (the digest of the tag
# today: `docker buildx imagetools inspect python:3.11-slim-bookworm`). Python dependencies are
# pinned by constraints.txt (the versions the tests passed with; regenerate with .ci/constraints.py).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/birdstream/bin:$PATH
RUN python -m venv /opt/birdstream \
    && pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md constraints.txt /src/
COPY birdstream /src/birdstream
RUN pip install -c /src/constraints.txt /src \
    && birdstream check-config --schema > /dev/null

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="birdstream" \
      org.opencontainers.image.description="Bird sightings from camera streams, published to MQTT"
# PyAV's wheels bundle FFmpeg; libgomp is torch's OpenMP runtime on CPU.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 birdstream \
    && useradd --system --uid 10001 --gid 10001 --groups video --no-create-home \
       --home-dir /var/lib/birdstream --shell /usr/sbin/nologin birdstream \
    && install -d -o birdstream -g birdstream -m 0750 /var/lib/birdstream /var/cache/birdstream \
    && install -d -m 0755 /etc/birdstream
COPY --from=build /opt/birdstream /opt/birdstream
COPY config.yaml /etc/birdstream/config.yaml
ENV PATH=/opt/birdstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BIRDSTREAM_CONFIG=/etc/birdstream/config.yaml \
    STATE_DIRECTORY=/var/lib/birdstream \
    CACHE_DIRECTORY=/var/cache/birdstream \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
VOLUME ["/var/lib/birdstream", "/var/cache/birdstream"]
USER 10001:10001
WORKDIR /var/lib/birdstream
EXPOSE 9108
# The health file is rewritten every few seconds by a healthy daemon; model loading needs a start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["birdstream", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["birdstream"]
CMD ["run"]
