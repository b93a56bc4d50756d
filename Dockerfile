# syntax=docker/dockerfile:1
# Switchyard: `docker build -t switchyard .`, then
#   docker run -v $PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro -p 8080:8080 switchyard
# (the configuration's `listen` must be 0.0.0.0:8080 in a container). docker-compose.yml uses it.

# Build: the Rust version follows the stable toolchain; Cargo.toml's rust-version is the minimum.
FROM rust:1-bookworm AS build
WORKDIR /src
# Only what the release binary is built from (.dockerignore keeps the rest out of the context).
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/switchyard /usr/local/bin/switchyard

# Run: a small Debian with the binary and an unprivileged user. TLS roots for webhook delivery
# are built into the binary (rustls with webpki roots), so no CA package is needed.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid switchyard --no-create-home \
         --home-dir /nonexistent --shell /usr/sbin/nologin switchyard \
    && mkdir -p /etc/switchyard /var/lib/switchyard/recordings \
    && chown switchyard:switchyard /var/lib/switchyard/recordings
COPY --from=build /usr/local/bin/switchyard /usr/local/bin/switchyard
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "--config", "/etc/switchyard/switchyard.toml"]
