//! Any byte string given to the safetensors reader is either refused with an error or
//! accepted as a file whose every tensor can be read, loaded, and written back to an
//! equivalent file; nothing panics, and nothing allocates beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rg_core::{DType, Device};
use rg_cpu as _;
use rg_io::{serialize_safetensors, SafeTensorsFile, TensorEntry};

fuzz_target!(|data: &[u8]| {
    let file = match SafeTensorsFile::from_vec("<fuzz>", data.to_vec()) {
        Ok(file) => file,
        Err(err) => {
            // Formatting the error must not panic either.
            let _ = err.to_string();
            return;
        }
    };
    let mut entries = Vec::new();
    for info in file.tensors() {
        let bytes = file
            .raw_bytes(info.name())
            .expect("listed tensors are readable");
        assert_eq!(bytes.len(), info.byte_len());
        // Loading may refuse (unsupported dtypes) but must not panic.
        if let Ok(t) = file.tensor(info.name(), &Device::Cpu) {
            assert_eq!(t.dims(), info.shape());
        }
        let _ = file.load_as(info.name(), DType::F32, &Device::Cpu);
        entries.push(TensorEntry::new(
            info.name(),
            info.dtype(),
            info.shape().to_vec(),
            bytes,
        ));
    }
    // Whatever we accept, we can write, and read back as the same tensors.
    let image =
        serialize_safetensors(entries, file.metadata()).expect("accepted files re-serialise");
    let again = SafeTensorsFile::from_vec("<fuzz-rewrite>", image).expect("our output parses");
    assert_eq!(again.len(), file.len());
    assert_eq!(again.metadata(), file.metadata());
    for info in file.tensors() {
        let other = again.info(info.name()).expect("same names");
        assert_eq!((other.dtype(), other.shape()), (info.dtype(), info.shape()));
        assert_eq!(
            again.raw_bytes(info.name()).unwrap(),
            file.raw_bytes(info.name()).unwrap()
        );
    }
});
