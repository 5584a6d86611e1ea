//! The compiled kernels: PTX of every kernels/<stem>.cu for sm_80 and sm_90, built by
//! `cargo xtask kernels` (NVRTC, so nobody needs nvcc) and committed under
//! kernels/ptx/. The driver JIT-compiles the PTX for the GPU at hand on first use; the
//! sm_90 build is taken on compute capability 9.0 and newer, sm_80 on 8.x.

/// One kernels/*.cu file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Elementwise,
    Copy,
    Reduce,
    Softmax,
    LayerNorm,
    CrossEntropy,
    Indexing,
    AdamW,
    Attention,
}

macro_rules! ptx {
    ($stem:literal) => {
        (
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../kernels/ptx/",
                $stem,
                ".sm_80.ptx"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../kernels/ptx/",
                $stem,
                ".sm_90.ptx"
            )),
        )
    };
}

impl Module {
    #[cfg(test)]
    pub const ALL: [Module; 9] = [
        Module::Elementwise,
        Module::Copy,
        Module::Reduce,
        Module::Softmax,
        Module::LayerNorm,
        Module::CrossEntropy,
        Module::Indexing,
        Module::AdamW,
        Module::Attention,
    ];

    pub fn stem(self) -> &'static str {
        match self {
            Module::Elementwise => "elementwise",
            Module::Copy => "copy",
            Module::Reduce => "reduce",
            Module::Softmax => "softmax",
            Module::LayerNorm => "layer_norm",
            Module::CrossEntropy => "cross_entropy",
            Module::Indexing => "indexing",
            Module::AdamW => "adamw",
            Module::Attention => "attention",
        }
    }

    /// The PTX for a device of compute capability `major.minor`.
    pub fn ptx(self, major: i32) -> &'static str {
        let (sm80, sm90) = match self {
            Module::Elementwise => ptx!("elementwise"),
            Module::Copy => ptx!("copy"),
            Module::Reduce => ptx!("reduce"),
            Module::Softmax => ptx!("softmax"),
            Module::LayerNorm => ptx!("layer_norm"),
            Module::CrossEntropy => ptx!("cross_entropy"),
            Module::Indexing => ptx!("indexing"),
            Module::AdamW => ptx!("adamw"),
            Module::Attention => ptx!("attention"),
        };
        if major >= 9 {
            sm90
        } else {
            sm80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_has_ptx_for_both_targets() {
        for m in Module::ALL {
            for (major, target) in [(8, "sm_80"), (9, "sm_90")] {
                let ptx = m.ptx(major);
                assert!(ptx.contains(".entry"), "{} {target}: no kernels", m.stem());
                assert!(
                    ptx.contains(&format!(".target {target}")),
                    "{} {target}: wrong target",
                    m.stem()
                );
            }
        }
    }

    #[test]
    fn entry_points_named_by_the_rust_side_exist() {
        let has = |m: Module, name: &str| m.ptx(8).contains(&format!(".entry {name}("));
        for name in [
            "unary_gelu_bf16",
            "binary_add_f32",
            "cmp_i64",
            "where_b2",
            "causal_fill_f64",
            "affine_bf16",
            "powf_f32",
        ] {
            assert!(has(Module::Elementwise, name), "{name}");
        }
        for name in ["copy_b8", "fill_b2", "cast_f32_bf16", "cast_i64_u32"] {
            assert!(has(Module::Copy, name), "{name}");
        }
        assert!(has(Module::Reduce, "reduce_col_argmax_bf16"));
        assert!(has(Module::Reduce, "reduce_part_sum_f64"));
        assert!(has(Module::Reduce, "reduce_finish_min_bf16"));
        assert!(has(Module::LayerNorm, "layer_norm_params_part_bf16"));
        assert!(has(Module::LayerNorm, "layer_norm_params_finish_f32"));
        assert!(has(Module::Attention, "attention_decode_combine_bf16"));
    }
}
