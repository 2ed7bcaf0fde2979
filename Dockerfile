# syntax=docker/dockerfile:1
# The runtime image: no torch, non-root, the bundle verified at every start (golden self-test).
# Build after `make model` (or with BUNDLE pointing at your own verified bundle):
#   docker build --build-arg BUNDLE=bundles/default -t zh-rnn-encoder .
ARG PYTHON=python:3.11-slim-bookworm

# Stage 1: the bundle, copied as exported (encoder-export verified it against eager PyTorch).
FROM ${PYTHON} AS bundle
ARG BUNDLE=bundles/default
COPY ${BUNDLE} /bundle

# Stage 2: the runtime, from the project's own lockfile: the base install and the http extra
# (for --http-listen, off unless HTTP_LISTEN is set), every version pinned with its hashes
# (requirements/runtime.txt, `make lock`); no export extra, so no torch.
FROM ${PYTHON} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/runtime.txt ./requirements/
COPY pyproject.toml README.md ./
COPY serving ./serving
COPY export ./export
# DL3013: the dependencies are the lockfile's; the project itself installs from this path.
# hadolint ignore=DL3013
RUN pip install --no-compile --no-deps --require-hashes -r requirements/runtime.txt \
    && pip install --no-compile --no-deps . \
    && pip check \
    && python -c "import zh_rnn_encoder.transport.app, zh_rnn_encoder.transport.openai.http_server" \
    && rm -rf /src
RUN groupadd --system --gid 10001 encoder \
    && useradd --system --uid 10001 --gid encoder --home-dir /home/encoder --create-home encoder
COPY --from=bundle --chown=root:root /bundle /bundle
USER 10001:10001
WORKDIR /home/encoder
# Every flag is also an environment variable (encoder-serve --help).
ENV BUNDLE=/bundle LISTEN=0.0.0.0:50051 JIEBA_CACHE_DIR=/home/encoder/jieba-cache
EXPOSE 50051 8080
ENTRYPOINT ["encoder-serve"]
