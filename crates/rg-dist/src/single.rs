use crate::communicator::check_len;
use crate::{Communicator, DistError, ReduceOp, Result};

/// A world of one process: every collective is a copy. The default when no launcher
/// started the program.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleProcess;

impl SingleProcess {
    fn check_root(op: &'static str, root: usize) -> Result<()> {
        if root != 0 {
            return Err(DistError::invalid(
                op,
                format!("root rank {root} does not exist in a world of 1"),
            ));
        }
        Ok(())
    }
}

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn backend_name(&self) -> &'static str {
        "single"
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f32(&self, send: &[f32], recv: &mut [f32], _op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_reduce_f32_in_place(&self, _buf: &mut [f32], _op: ReduceOp) -> Result<()> {
        // Sum, average and maximum over one rank leave the values as they are.
        Ok(())
    }
    fn all_reduce_f64(&self, send: &[f64], recv: &mut [f64], _op: ReduceOp) -> Result<()> {
        check_len("all_reduce", "recv", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn broadcast_bytes(&self, _buf: &mut [u8], root: usize) -> Result<()> {
        Self::check_root("broadcast", root)
    }
    fn broadcast_f32(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        Self::check_root("broadcast", root)
    }
    fn reduce_scatter_f32(&self, send: &[f32], recv: &mut [f32], _op: ReduceOp) -> Result<()> {
        check_len("reduce_scatter", "recv", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_len("all_gather", "recv", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        check_len("all_gather", "recv", recv.len(), send.len())?;
        recv.copy_from_slice(send);
        Ok(())
    }
}
