//! The writer's own checks, atomic replacement of files and directories.

mod common;

use std::collections::BTreeMap;

use common::ScratchDir;
use rg_core::DType;
use rg_io::{
    atomic_write, atomic_write_with, save_safetensors_entries, serialize_safetensors, AtomicDir,
    Error, SafeTensorsFile, TensorEntry,
};

fn no_metadata() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn bytes_that_do_not_match_the_shape_are_refused_naming_the_tensor() {
    let entries = [TensorEntry::new("w", DType::F32, vec![2, 2], vec![0u8; 15])];
    let err = serialize_safetensors(entries, &no_metadata()).unwrap_err();
    assert!(matches!(err, Error::InvalidEntry { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("tensor \"w\"") && msg.contains("needs 16 bytes, got 15"),
        "{msg}"
    );
}

#[test]
fn overflowing_shapes_are_refused() {
    let entries = [TensorEntry::new(
        "w",
        DType::F64,
        vec![usize::MAX, 2],
        vec![],
    )];
    let msg = serialize_safetensors(entries, &no_metadata())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("more than usize::MAX"), "{msg}");
}

#[test]
fn duplicate_and_reserved_names_are_refused() {
    let entries = [
        TensorEntry::new("w", DType::U32, vec![1], vec![0u8; 4]),
        TensorEntry::new("w", DType::U32, vec![1], vec![0u8; 4]),
    ];
    let err = serialize_safetensors(entries, &no_metadata()).unwrap_err();
    assert!(matches!(err, Error::DuplicateTensor { .. }), "{err}");
    let entries = [TensorEntry::new(
        "__metadata__",
        DType::U32,
        vec![1],
        vec![0u8; 4],
    )];
    let msg = serialize_safetensors(entries, &no_metadata())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("reserved"), "{msg}");
}

#[test]
fn a_refused_save_leaves_the_previous_file_and_no_temporary() {
    let dir = ScratchDir::new("refused");
    let path = dir.join("m.safetensors");
    atomic_write(&path, b"previous").unwrap();
    let entries = [TensorEntry::new("w", DType::F32, vec![3], vec![0u8; 4])];
    let msg = save_safetensors_entries(&path, entries, &no_metadata())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"previous");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn empty_file_round_trips() {
    let image = serialize_safetensors([], &no_metadata()).unwrap();
    // "{}" padded to 8 bytes, as the reference writes it.
    assert_eq!(&image[8..], b"{}      ");
    assert!(SafeTensorsFile::from_vec("<memory>", image)
        .unwrap()
        .is_empty());
}

#[test]
fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
    let dir = ScratchDir::new("atomic");
    let path = dir.join("out.bin");
    atomic_write(&path, b"one").unwrap();
    atomic_write(&path, b"two").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_failing_writer_keeps_the_old_file() {
    let dir = ScratchDir::new("failing");
    let path = dir.join("out.bin");
    atomic_write(&path, b"old").unwrap();
    let err = atomic_write_with(&path, |out| {
        out.write_all(b"partial")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary left behind"
    );
}

#[test]
fn atomic_write_into_a_missing_directory_names_the_path() {
    let dir = ScratchDir::new("nodir");
    let path = dir.join("missing/out.bin");
    let msg = atomic_write(&path, b"x").unwrap_err().to_string();
    assert!(msg.contains("missing"), "{msg}");
}

#[test]
fn atomic_dir_appears_only_on_commit() {
    let dir = ScratchDir::new("adir");
    let target = dir.join("ckpt");
    let staging = AtomicDir::new(&target).unwrap();
    std::fs::write(staging.path().join("model.safetensors"), b"weights").unwrap();
    std::fs::create_dir(staging.path().join("optim")).unwrap();
    std::fs::write(staging.path().join("optim/state.bin"), b"state").unwrap();
    assert!(!target.exists(), "visible before commit");
    let temp = staging.path().to_owned();
    assert!(temp
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("ckpt.tmp-"));
    assert_eq!(staging.commit().unwrap(), target);
    assert!(!temp.exists());
    assert_eq!(
        std::fs::read(target.join("optim/state.bin")).unwrap(),
        b"state"
    );
}

#[test]
fn atomic_dir_replaces_an_existing_directory_whole() {
    let dir = ScratchDir::new("areplace");
    let target = dir.join("ckpt");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("stale.bin"), b"old").unwrap();
    let staging = AtomicDir::new(&target).unwrap();
    std::fs::write(staging.path().join("fresh.bin"), b"new").unwrap();
    staging.commit().unwrap();
    assert!(!target.join("stale.bin").exists());
    assert_eq!(std::fs::read(target.join("fresh.bin")).unwrap(), b"new");
    // Only the final directory remains: no temporary, no moved-aside copy.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_abandoned_atomic_dir_is_removed() {
    let dir = ScratchDir::new("aabandon");
    let target = dir.join("ckpt");
    {
        let staging = AtomicDir::new(&target).unwrap();
        std::fs::write(staging.path().join("half.bin"), b"...").unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
