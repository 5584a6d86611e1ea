use rg_autograd::Var;

/// A layer or model with named parameters. Names are dotted paths relative to the
/// module (`weight`, `ln_1.bias`, `h.0.attn.c_attn.weight`).
pub trait Module {
    /// Calls `visit` once per parameter with its name.
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var));

    /// Every parameter with its name, in a stable order.
    fn named_params(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        self.visit_params(&mut |name, var| out.push((name.to_string(), var.clone())));
        out
    }

    fn params(&self) -> Vec<Var> {
        self.named_params().into_iter().map(|(_, v)| v).collect()
    }

    fn param_count(&self) -> usize {
        self.named_params()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum()
    }
}

/// Visits `child`'s parameters under `prefix.`.
pub fn visit_child(prefix: &str, child: &dyn Module, visit: &mut dyn FnMut(&str, &Var)) {
    child.visit_params(&mut |name, var| visit(&format!("{prefix}.{name}"), var));
}

impl<M: Module> Module for Vec<M> {
    fn visit_params(&self, visit: &mut dyn FnMut(&str, &Var)) {
        for (i, m) in self.iter().enumerate() {
            visit_child(&i.to_string(), m, visit);
        }
    }
}
