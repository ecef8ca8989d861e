# rswan: multi-stage build of the `ipsec` binary on Debian 12.
#   docker build -t rswan .
#   docker run --rm --cap-add NET_ADMIN --cap-add NET_RAW --device /dev/net/tun \
#     -v /etc/ipsec.conf:/etc/ipsec.conf:ro -v /etc/ipsec.secrets:/etc/ipsec.secrets:ro \
#     --network host rswan
FROM rust:1-bookworm AS build
# libcrypto for the 3DES provider (openssl crate).
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
COPY tests ./tests
RUN cargo build --release --locked --bin ipsec

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 net-tools iputils-ping ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ipsec /usr/sbin/ipsec
COPY conf /usr/share/doc/rswan/examples
# For images that boot systemd: Type=notify, reload = ipsec auto --rereadall (README).
COPY systemd/ipsec.service /usr/lib/systemd/system/ipsec.service
# Runs the daemon in the foreground (systemd/containers); ipsec.conf and ipsec.secrets are mounted.
ENTRYPOINT ["/usr/sbin/ipsec", "setup", "start", "--nofork"]
