# custody service image: the wheel and its locked dependencies in a venv, run as a user without
# privileges. Bring the HSM vendor's PKCS#11 module in at run time (see deploy/README.md).
#
# Every file pip fetches is checked against a hash: requirements.lock (what the service runs on)
# and requirements-build.lock (what builds wheels from source: custody's, and embit's, published
# only as an sdist), both from `make lock`. Builds run without isolation, which would fetch their
# build backend again without a hash. The image has no compiler: every other dependency is a wheel.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first: their layer is rebuilt only when a lock changes, not with every source edit.
COPY requirements-build.lock requirements.lock ./
RUN python -m venv /opt/custody \
    && /opt/custody/bin/pip install --require-hashes -r requirements-build.lock \
    && /opt/custody/bin/pip install --require-hashes --no-build-isolation -r requirements.lock
COPY pyproject.toml README.md ./
COPY custody custody
# The wheel, then that wheel alone (--no-deps: its dependencies are the locked ones above).
RUN /opt/custody/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist . \
    && /opt/custody/bin/pip install --no-deps /dist/custody-*.whl \
    && /opt/custody/bin/pip check

FROM ${PYTHON_IMAGE}
# A fixed uid, so volumes, PIN files (owned by it, mode 0400) and runAsUser can name it.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/custody \
        --shell /usr/sbin/nologin custody \
    && install -d -m 700 -o custody -g custody /var/lib/custody
COPY --from=build /opt/custody /opt/custody
ENV PATH=/opt/custody/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    CUSTODY_HOME=/var/lib/custody \
    CUSTODY_LOG_FORMAT=json
# By number: Kubernetes' runAsNonRoot can verify only a numeric user.
USER 10001:10001
WORKDIR /var/lib/custody
EXPOSE 8000
CMD ["custody", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
