//! Rebuilds the server when the web client changes: `include_dir!` embeds `web-client/` at
//! compile time, but cargo does not know the macro read those files, so an edited or added
//! script would otherwise be served from the previous build.

fn main() {
    // A directory here is scanned whole for changes (cargo's `rerun-if-changed`).
    println!("cargo:rerun-if-changed=../web-client");
}
