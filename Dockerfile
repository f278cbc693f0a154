# weir: a static binary in a minimal, non-root image with a read-only root filesystem.
#   docker build -t weir .
# (Not built in CI: the CI machines have no Docker engine; e2e/helm/test.sh lints it with hadolint.)
FROM rust:1.95-bookworm AS build
# musl-tools unpinned (DL3008): only this build stage sees it, and bookworm's archive drops
# superseded versions, so a pin would break the build rather than make it reproducible.
# hadolint ignore=DL3008
RUN rustup target add x86_64-unknown-linux-musl \
    && apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY examples examples
COPY benches benches
# The patched h2 of [patch.crates-io] (vendor/README.md).
COPY vendor vendor
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin weir

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/weir /weir
USER 65532:65532
EXPOSE 8080 8443 9901
ENTRYPOINT ["/weir"]
CMD ["run"]
