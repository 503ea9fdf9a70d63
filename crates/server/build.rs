//! Rebuilds the server when anything under `web/` changes: the templates and static files are embedded at compile
//! time, and `include_dir!` cannot tell cargo which files it read.

fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
