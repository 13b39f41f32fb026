# The custody image with SoftHSM2 as its HSM, for tests/packaging/test_docker_compose.py only:
# a vendor's PKCS#11 module cannot ship in a test. The token lives in a volume all containers
# share (/var/lib/softhsm/tokens), as a network HSM's keys are one set for every part.
ARG BASE=custody:test
FROM ${BASE}
USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/softhsm/tokens && chown 10001:10001 /var/lib/softhsm/tokens
USER 10001:10001
