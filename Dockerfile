# votestream's binary for the distributed shape in compose.yaml: a
# multi-stage Rust build, then a slim runtime with just the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --locked --bin votestream

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/votestream /usr/local/bin/votestream
ENTRYPOINT ["votestream"]
