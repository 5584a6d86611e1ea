//! Every way a safetensors file can be malformed is rejected at open, with a message
//! that names the file and the tensor or header field at fault.

mod common;

use common::{image, write_file, ScratchDir};
use rg_io::{Error, SafeTensorsFile};

/// Writes `bytes` to a file named `name`, opens it, and returns the error and its
/// message after checking the message names the file.
fn open_fails(name: &str, bytes: &[u8]) -> (Error, String) {
    let dir = ScratchDir::new("reject");
    let path = write_file(&dir, name, bytes);
    let err = SafeTensorsFile::open(&path).expect_err("malformed file must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    (err, msg)
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
}

const F32_2X2: &str = r#""dtype":"F32","shape":[2,2],"data_offsets":[0,16]"#;

#[test]
fn valid_baseline_opens() {
    // The template the other cases break, so each failure is due to its one change.
    let dir = ScratchDir::new("baseline");
    let header = format!(r#"{{"__metadata__":{{"format":"pt"}},"w":{{{F32_2X2}}}}}"#);
    let path = write_file(&dir, "ok.safetensors", &image(&header, &[0; 16]));
    let file = SafeTensorsFile::open(&path).unwrap();
    assert_eq!(file.info("w").unwrap().shape(), &[2, 2]);
    assert_eq!(file.metadata()["format"], "pt");
}

#[test]
fn empty_file() {
    let (err, _) = open_fails("empty.safetensors", &[]);
    assert!(matches!(
        err,
        Error::TruncatedHeaderLength { file_len: 0, .. }
    ));
}

#[test]
fn truncated_header_length() {
    let (err, msg) = open_fails("short.safetensors", &[16, 0, 0]);
    assert!(matches!(
        err,
        Error::TruncatedHeaderLength { file_len: 3, .. }
    ));
    assert_mentions(&msg, &["8-byte header length"]);
}

#[test]
fn truncated_header() {
    // The length promises 100 bytes of JSON; the file ends after 10.
    let mut bytes = 100u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(br#"{"w":{"dty"#);
    let (err, msg) = open_fails("cut.safetensors", &bytes);
    assert!(matches!(
        err,
        Error::HeaderPastEnd {
            header_len: 100,
            file_len: 18,
            ..
        }
    ));
    assert_mentions(&msg, &["header length 100", "18 bytes"]);
}

#[test]
fn huge_header_length_fails_fast_without_allocating() {
    // 2^62 bytes: allocating for it would abort the process; the check must come first.
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let (err, _) = open_fails("huge.safetensors", &bytes);
    assert!(matches!(err, Error::HeaderPastEnd { .. }));
}

#[test]
fn header_over_the_size_limit() {
    // A file really holding a >100 MB header is refused even though it is in bounds.
    let len = rg_io::MAX_HEADER_LEN + 1;
    let mut bytes = len.to_le_bytes().to_vec();
    bytes.resize(8 + len as usize, b' ');
    let (err, msg) = open_fails("big-header.safetensors", &bytes);
    assert!(matches!(err, Error::HeaderTooLarge { .. }));
    assert_mentions(&msg, &["exceeds the limit"]);
}

#[test]
fn header_not_utf8() {
    let (err, msg) = open_fails("latin1.safetensors", &image_bytes(b"{\"caf\xe9\":1}"));
    assert!(matches!(err, Error::HeaderNotUtf8 { offset: 5, .. }));
    assert_mentions(&msg, &["UTF-8"]);
}

fn image_bytes(header: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out
}

#[test]
fn malformed_json() {
    let (err, msg) = open_fails(
        "bad-json.safetensors",
        &image(r#"{"w":{"dtype":"F32",}"#, &[]),
    );
    assert!(matches!(err, Error::HeaderJson { .. }));
    assert_mentions(&msg, &["not well-formed JSON", "column"]);
}

#[test]
fn header_not_an_object() {
    let (err, msg) = open_fails("array.safetensors", &image("[1,2]", &[]));
    assert!(matches!(err, Error::InvalidField { .. }));
    assert_mentions(&msg, &["header", "an array of 2 elements"]);
}

#[test]
fn entry_not_an_object() {
    let (_, msg) = open_fails("entry.safetensors", &image(r#"{"w":[1,2,3]}"#, &[]));
    assert_mentions(
        &msg,
        &[
            "tensor \"w\"",
            "expected an object",
            "an array of 3 elements",
        ],
    );
    let (_, msg) = open_fails("entry2.safetensors", &image(r#"{"bias":"F32"}"#, &[]));
    assert_mentions(&msg, &["tensor \"bias\"", "the string \"F32\""]);
}

#[test]
fn missing_field() {
    let header = r#"{"w":{"dtype":"F32","shape":[2,2]}}"#;
    let (_, msg) = open_fails("missing.safetensors", &image(header, &[0; 16]));
    assert_mentions(&msg, &["tensor \"w\"", "missing field \"data_offsets\""]);
}

#[test]
fn unknown_dtype() {
    let header = r#"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    let (err, msg) = open_fails("dtype.safetensors", &image(header, &[0; 16]));
    assert!(matches!(err, Error::UnknownDType { .. }));
    assert_mentions(&msg, &["unknown dtype \"F128\"", "tensor \"w\""]);
}

#[test]
fn dtype_not_a_string() {
    let header = r#"{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#;
    let (_, msg) = open_fails("dtype-num.safetensors", &image(header, &[0; 4]));
    assert_mentions(&msg, &["tensor \"w\", field \"dtype\"", "the number 4"]);
}

#[test]
fn offsets_beyond_the_data_section() {
    let header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#;
    let (err, msg) = open_fails("range.safetensors", &image(header, &[0; 16]));
    assert!(matches!(
        err,
        Error::OffsetsOutOfRange {
            start: 8,
            end: 24,
            data_len: 16,
            ..
        }
    ));
    assert_mentions(&msg, &["tensor \"w\"", "[8, 24]", "16-byte data section"]);
}

#[test]
fn offsets_in_wrong_order() {
    let header = r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}"#;
    let (_, msg) = open_fails("reversed.safetensors", &image(header, &[0; 16]));
    assert_mentions(
        &msg,
        &[
            "tensor \"w\", field \"data_offsets\"",
            "start 16 is after end 0",
        ],
    );
}

#[test]
fn offsets_not_a_pair() {
    let header = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16,32]}}"#;
    let (_, msg) = open_fails("triple.safetensors", &image(header, &[0; 32]));
    assert_mentions(
        &msg,
        &["tensor \"w\", field \"data_offsets\"", "got 3 numbers"],
    );
}

#[test]
fn overlapping_offsets() {
    let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                     "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
    let (err, msg) = open_fails("overlap.safetensors", &image(header, &[0; 16]));
    assert!(matches!(err, Error::OverlappingTensors { .. }));
    assert_mentions(&msg, &["\"a\"", "\"b\"", "overlap"]);
}

#[test]
fn empty_tensors_may_share_an_offset() {
    // Zero-sized tensors own no bytes, so they overlap nothing (the reference writer
    // gives them the offset of their neighbour).
    let dir = ScratchDir::new("empty-tensors");
    let header = r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},
                     "b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                     "c":{"dtype":"F32","shape":[3,0],"data_offsets":[8,8]}}"#;
    let path = write_file(&dir, "ok.safetensors", &image(header, &[0; 16]));
    assert_eq!(SafeTensorsFile::open(path).unwrap().len(), 3);
}

#[test]
fn byte_length_does_not_match_shape() {
    let header = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#;
    let (err, msg) = open_fails("length.safetensors", &image(header, &[0; 16]));
    assert!(matches!(
        err,
        Error::ByteLengthMismatch {
            expected: 24,
            actual: 16,
            ..
        }
    ));
    assert_mentions(
        &msg,
        &["tensor \"w\"", "[2, 3]", "needs 24 bytes but has 16"],
    );
}

#[test]
fn shape_product_overflows() {
    let big = usize::MAX / 2;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{big},{big}],"data_offsets":[0,0]}}}}"#);
    let (err, msg) = open_fails("overflow.safetensors", &image(&header, &[]));
    assert!(matches!(err, Error::SizeOverflow { .. }));
    assert_mentions(&msg, &["tensor \"w\"", "more bytes than"]);
    // The element count fits but times the element size does not.
    let header = format!(
        r#"{{"w":{{"dtype":"F64","shape":[{}],"data_offsets":[0,0]}}}}"#,
        usize::MAX / 4
    );
    let (err, _) = open_fails("overflow2.safetensors", &image(&header, &[]));
    assert!(matches!(err, Error::SizeOverflow { .. }));
    // No bytes at all (a zero dimension), yet the other dimensions overflow: its
    // strides could not be computed, so it is refused too.
    let header =
        format!(r#"{{"w":{{"dtype":"U8","shape":[0,{big},{big}],"data_offsets":[0,0]}}}}"#);
    let (err, _) = open_fails("overflow3.safetensors", &image(&header, &[]));
    assert!(matches!(err, Error::SizeOverflow { .. }));
}

#[test]
fn duplicate_tensor_names() {
    // serde_json would silently keep the second; we must refuse.
    let header = format!(r#"{{"w":{{{F32_2X2}}},"w":{{{F32_2X2}}}}}"#);
    let (err, msg) = open_fails("dup.safetensors", &image(&header, &[0; 16]));
    assert!(matches!(err, Error::DuplicateTensor { .. }));
    assert_mentions(&msg, &["tensor \"w\" appears more than once"]);
}

#[test]
fn duplicate_field_within_an_entry() {
    let header = r#"{"w":{"dtype":"F32","shape":[4],"shape":[2,2],"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("dup-field.safetensors", &image(header, &[0; 16]));
    assert_mentions(
        &msg,
        &["tensor \"w\", field \"shape\"", "appears more than once"],
    );
}

#[test]
fn negative_dimension() {
    let header = r#"{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("negative.safetensors", &image(header, &[0; 16]));
    assert_mentions(
        &msg,
        &[
            "tensor \"w\", field \"shape\"",
            "element 0 is the number -1",
        ],
    );
}

#[test]
fn non_integer_dimension() {
    let header = r#"{"w":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("fraction.safetensors", &image(header, &[0; 16]));
    assert_mentions(
        &msg,
        &["tensor \"w\", field \"shape\"", "element 0 is the number 2"],
    );
    let header = r#"{"w":{"dtype":"F32","shape":[2,"2"],"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("string-dim.safetensors", &image(header, &[0; 16]));
    assert_mentions(&msg, &["field \"shape\"", "element 1 is the string \"2\""]);
    let header = r#"{"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("scalar-shape.safetensors", &image(header, &[0; 16]));
    assert_mentions(&msg, &["field \"shape\"", "expected an array"]);
}

#[test]
fn dimension_beyond_u64() {
    let header = r#"{"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,16]}}"#;
    let (_, msg) = open_fails("u64.safetensors", &image(header, &[0; 16]));
    assert_mentions(
        &msg,
        &["tensor \"w\", field \"shape\"", "non-negative integer"],
    );
}

#[test]
fn negative_offset() {
    let header = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}}"#;
    let (_, msg) = open_fails("neg-offset.safetensors", &image(header, &[0; 16]));
    assert_mentions(&msg, &["tensor \"w\", field \"data_offsets\"", "-16"]);
}

#[test]
fn metadata_must_map_strings_to_strings() {
    let header = r#"{"__metadata__":{"epoch":3}}"#;
    let (_, msg) = open_fails("meta-num.safetensors", &image(header, &[]));
    assert_mentions(&msg, &["__metadata__ key \"epoch\"", "expected a string"]);
    let header = r#"{"__metadata__":["pt"]}"#;
    let (_, msg) = open_fails("meta-array.safetensors", &image(header, &[]));
    assert_mentions(&msg, &["__metadata__", "expected an object of strings"]);
    let header = r#"{"__metadata__":{"a":"1","a":"2"}}"#;
    let (_, msg) = open_fails("meta-dup.safetensors", &image(header, &[]));
    assert_mentions(&msg, &["__metadata__ key \"a\"", "appears more than once"]);
    let header = r#"{"__metadata__":{},"__metadata__":{}}"#;
    let (_, msg) = open_fails("meta-twice.safetensors", &image(header, &[]));
    assert_mentions(&msg, &["__metadata__", "appears more than once"]);
}

#[test]
fn hostile_names_are_shortened_in_messages() {
    let name = "x".repeat(10_000);
    let header = format!(r#"{{"{name}":{{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}}}"#);
    let (_, msg) = open_fails("long-name.safetensors", &image(&header, &[0; 16]));
    assert!(msg.len() < 1_000, "message is {} bytes", msg.len());
}

#[test]
fn missing_file_names_the_path() {
    let dir = ScratchDir::new("missing");
    let path = dir.join("nope.safetensors");
    let msg = SafeTensorsFile::open(&path).unwrap_err().to_string();
    assert!(
        msg.contains("nope.safetensors") && msg.contains("open"),
        "{msg}"
    );
}

#[test]
fn unknown_tensor_names_the_file_and_tensor() {
    let header = format!(r#"{{"w":{{{F32_2X2}}}}}"#);
    let file = SafeTensorsFile::from_vec("mem.safetensors", image(&header, &[0; 16])).unwrap();
    let msg = file.raw_bytes("v").unwrap_err().to_string();
    assert_mentions(&msg, &["mem.safetensors", "no tensor named \"v\""]);
}
