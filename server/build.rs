//! The release binary embeds the built web app (`dist/`, see src/api/web_files.rs). Cargo does
//! not notice new files in a folder a derive macro read, so this makes every web build
//! recompile the embedding, and says when there is nothing to embed.
fn main() {
    println!("cargo:rerun-if-changed=../dist");
    if !std::path::Path::new("../dist/index.html").is_file() {
        println!(
            "cargo:warning=dist/ has no web app: this spool serves the API only (run \
             scripts/build-web.sh, then build again, or give `spool serve --web DIR`)"
        );
    }
}
