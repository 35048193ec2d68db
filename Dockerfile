# syntax=docker/dockerfile:1
#
# vphone in a container: one virtual KX-UTG300 per container, its flash on a volume.
#
#   docker build -t vphone .
#   docker run --rm -v phone1:/var/lib/vphone -e VPHONE_MAC=0080F0C571EB \
#       -e VPHONE_PROV_URL=http://prov.example.com/ -p 127.0.0.1:8080:8080 vphone
#
# Every `vphone boot` option is also an environment variable: VPHONE_ + the flag in capitals, `-` as `_`
# (VPHONE_MAC, VPHONE_PROV_URL, VPHONE_DHCP_OPTION66, VPHONE_TIME_SCALE, VPHONE_INSECURE=1, VPHONE_HTTP_PORT, ...).
# The flash is /var/lib/vphone/phone.flash: a container restart is a phone reboot, a new volume a factory-fresh
# phone. `docker stop` sends SIGTERM; vphone finishes the flash transaction in progress and exits 0.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build: the Swift toolchain and the C libraries' headers ----
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        pkg-config libcurl4-openssl-dev libxml2-dev libssl-dev libsqlite3-dev libmimalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is reused until Package.swift or Package.resolved changes.
COPY Package.swift Package.resolved ./
RUN swift package resolve
COPY Sources Sources
COPY Tests Tests
COPY Profiles Profiles
# The Swift runtime and Foundation linked in statically: the runtime stage needs only the C libraries (measured: the
# binary then links libcurl, libxml2, libcrypto/libssl, libsqlite3, libmimalloc, libstdc++ and libc, ~64 MB stripped).
RUN swift build -c release --product vphone --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/vphone" /out/usr/local/bin/vphone \
    && strip /out/usr/local/bin/vphone \
    && mkdir -p /out/usr/local/share/vphone \
    && cp -R Profiles /out/usr/local/share/vphone/Profiles

# ---- runtime: slim Debian with the shared libraries vphone links ----
FROM ${RUNTIME_IMAGE}
# libcurl4 (Transport), libxml2 (ConfigFormats), libssl3 (Crypto), libsqlite3-0 (Flash), libmimalloc2.0 (the
# allocator: fleet speed), libstdc++6 (the Swift runtime), ca-certificates (HTTPS), tini (PID 1: forwards SIGTERM
# to vphone, reaps), curl (the health check).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4 libxml2 libssl3 libsqlite3-0 libmimalloc2.0 libstdc++6 ca-certificates tini curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/vphone --shell /usr/sbin/nologin vphone \
    && install -d -o vphone -g vphone -m 0700 /var/lib/vphone
COPY --from=build /out/ /
COPY docker/entrypoint.sh /usr/local/bin/vphone-entrypoint
COPY docker/healthcheck.sh /usr/local/bin/vphone-healthcheck

ENV VPHONE_FLASH=/var/lib/vphone/phone.flash \
    VPHONE_HTTP_PORT=8080 \
    VPHONE_HTTP_BIND=0.0.0.0
USER vphone
WORKDIR /var/lib/vphone
VOLUME ["/var/lib/vphone"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/vphone-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/vphone-entrypoint"]
CMD ["boot"]
