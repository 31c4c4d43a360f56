//! Replays, on the stable toolchain, every input the fuzzers kept (`fuzz/regressions/TARGET/`:
//! crashes, hangs, broken properties) and every hand-written seed (`fuzz/seeds/TARGET/`)
//! through the same property checks as the fuzz targets, so that a fixed crash stays fixed
//! without nightly.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::Path;

/// Runs each file of `fuzz/FOLDER/TARGET/` through its target; returns how many ran.
fn replay(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder);
    let mut replayed = 0;
    for dir in std::fs::read_dir(&root).expect("the folder exists") {
        let dir = dir.expect("directory entry").path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (_, check) = fuzz_checks::TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .unwrap_or_else(|| panic!("fuzz/{folder}/{target}: no such fuzz target"));
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .expect("a folder per target")
            .map(|e| e.expect("directory entry").path())
            .collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).expect("readable input");
            eprintln!("replaying {}", input.display());
            check(&data);
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_kept_fuzz_input_passes_its_target_again() {
    replay("regressions");
}

#[test]
fn every_hand_written_seed_holds_its_targets_properties() {
    assert!(replay("seeds") > 0, "fuzz/seeds holds the seeds");
}
