//! With feature `mpi`: compiles the one-line C shim that hands Rust `MPI_IN_PLACE`
//! (a macro, so only a C compiler against the library's `mpi.h` knows its value), the
//! same way the `mpi-sys` crate finds the library. Without the feature: nothing.

fn main() {
    println!("cargo:rerun-if-changed=csrc/in_place.c");
    #[cfg(feature = "mpi")]
    compile_in_place_shim();
}

#[cfg(feature = "mpi")]
fn compile_in_place_shim() {
    let lib = match build_probe_mpi::probe() {
        Ok(lib) => lib,
        Err(errs) => {
            for err in errs {
                println!("cargo:warning=looking for MPI: {err}");
            }
            // The `mpi` crate's own build fails the same way with its explanation.
            std::process::exit(1);
        }
    };
    let mut build = cc::Build::new();
    build.file("csrc/in_place.c");
    match lib.mpicc {
        Some(mpicc) => {
            build.compiler(mpicc);
        }
        None => {
            for inc in &lib.include_paths {
                build.include(inc);
            }
        }
    }
    build.compile("rg_dist_in_place");
}
