# weir: a static binary in a minimal, non-root image with a read-only root filesystem.
#   docker build -t weir .
# (Not built in CI: the CI machines have no Docker engine.)
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y musl-tools
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY examples examples
COPY benches benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin weir

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/weir /weir
USER 65532:65532
EXPOSE 8080 8443 9901
ENTRYPOINT ["/weir"]
CMD ["run"]
