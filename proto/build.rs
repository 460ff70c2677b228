//! Compiles `palaver/**/*.proto` with protox (pure Rust), so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "palaver/identity/v1/identity.proto",
        "palaver/presence/v1/presence.proto",
        "palaver/conversation/v1/conversation.proto",
        "palaver/events/v1/events.proto",
    ];
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
