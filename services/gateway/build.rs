//! Assembles the gateway's two scripts, `scripts/widget.js` and `scripts/console.js`, into
//! `OUT_DIR`: each line `// include: FILE` is replaced by the file `scripts/FILE`, so a
//! script served as one file can be written as small ones, and the two can share some.
//! `src/http/pages.rs` serves what this writes, in debug and release builds alike; no
//! JavaScript tool is needed to build or run.

use std::path::{Path, PathBuf};
use std::{env, fs};

/// The scripts served, by their file names in `scripts/` and in `OUT_DIR`.
const SCRIPTS: [&str; 2] = ["widget.js", "console.js"];

const INCLUDE: &str = "// include: ";

fn main() {
    let sources = Path::new("scripts");
    println!("cargo::rerun-if-changed={}", sources.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in SCRIPTS {
        let target = out.join(name);
        fs::write(&target, assemble(sources, name))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    }
}

/// `scripts/<name>` with its include lines replaced by the files they name.
fn assemble(sources: &Path, name: &str) -> String {
    let mut script = String::new();
    for line in read(&sources.join(name)).lines() {
        match line.trim().strip_prefix(INCLUDE) {
            Some(part) => {
                let part = read(&sources.join(part.trim()));
                script.push_str(&part);
                if !part.ends_with('\n') {
                    script.push('\n');
                }
            }
            None => {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    script
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
