# votestream's binary for compose.yaml: a multi-stage Rust build, then a slim
# runtime with the binary and the Spark engine's launcher script.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own, so that a change to src/
# rebuilds only the crate (the classic builder has no cache mounts).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' >src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin votestream && rm -rf src
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin votestream

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/votestream /usr/local/bin/votestream
ENTRYPOINT ["votestream"]
