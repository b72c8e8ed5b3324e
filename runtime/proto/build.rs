//! Generates the Rust wire types and tonic services from `proto/shoal/v1/*.proto`
//! with a pure-Rust protobuf compiler (protox), so no `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["common", "client", "worker", "data", "control", "executor"]
        .map(|name| root.join(format!("shoal/v1/{name}.proto")));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .bytes(".shoal.v1.ObjectPiece.data")
        .bytes(".shoal.v1.KeyValue.data")
        // Values between a worker and its executors: shared with the store, never copied.
        .bytes(".shoal.v1.ExecTask.inputs")
        .bytes(".shoal.v1.ExecutorReply.value")
        // Rarely set: boxed, so every TaskError (and Result carrying one) stays small.
        .boxed(".shoal.v1.TaskError.memory")
        .compile_fds(descriptors)?;
    Ok(())
}
