//! Compiles `proto/kiln.proto` with a pure-Rust protobuf compiler (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/kiln.proto");
    let descriptors = protox::compile(["proto/kiln.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
