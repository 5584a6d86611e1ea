//! `Tensor`: shared backend storage seen through a `Layout`. Cloning is cheap (an `Arc`);
//! views share storage; ops return new tensors.

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{self, Backend, BoxStorage, View};
use crate::{DType, Device, Error, HostBuffer, Layout, Result, Shape, SharedBytes, WithDType};

#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

struct Inner {
    storage: Arc<RwLock<BoxStorage>>,
    layout: Layout,
    dtype: DType,
    device: Device,
    backend: Arc<dyn Backend>,
}

impl Tensor {
    // ---- construction -------------------------------------------------------------

    /// Wraps fresh contiguous storage a backend produced.
    pub(crate) fn from_storage(
        storage: BoxStorage,
        shape: impl Into<Shape>,
        backend: Arc<dyn Backend>,
    ) -> Tensor {
        let dtype = storage.dtype();
        let device = storage.device();
        Tensor(Arc::new(Inner {
            storage: Arc::new(RwLock::new(storage)),
            layout: Layout::contiguous(shape),
            dtype,
            device,
            backend,
        }))
    }

    /// The same storage seen through another layout.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            storage: self.0.storage.clone(),
            layout,
            dtype: self.0.dtype,
            device: self.0.device,
            backend: self.0.backend.clone(),
        }))
    }

    pub fn from_host(data: HostBuffer, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        if Some(data.len()) != shape.checked_elem_count("from_vec").ok() {
            return Err(Error::ElementCountMismatch {
                op: "from_vec",
                from: Shape::new([data.len()]),
                from_elems: data.len(),
                to: shape.clone(),
                to_elems: shape.checked_elem_count("reshape").unwrap_or(usize::MAX),
            });
        }
        let backend = backend::backend_for(*device)?;
        let storage = backend.from_host(data)?;
        Ok(Tensor::from_storage(storage, shape, backend))
    }

    pub fn from_vec<T: WithDType>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::from_host(T::into_host(data), shape, device)
    }

    pub fn from_slice<T: WithDType>(
        data: &[T],
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// A 0-dimensional tensor.
    pub fn scalar<T: WithDType>(value: T, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(vec![value], (), device)
    }

    /// Little-endian bytes owned elsewhere (a memory map); zero-copy where the backend
    /// can (aligned f32 on the CPU).
    pub fn from_shared_bytes(
        bytes: SharedBytes,
        dtype: DType,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let expected = shape
            .checked_elem_count("from_shared_bytes")?
            .checked_mul(dtype.size_in_bytes());
        if expected != Some(bytes.len()) {
            return Err(Error::invalid(
                "from_shared_bytes",
                format!(
                    "{} bytes do not hold a {dtype} tensor of shape {shape} ({} bytes)",
                    bytes.len(),
                    expected.map_or("too many".to_string(), |e| e.to_string())
                ),
            ));
        }
        let backend = backend::backend_for(*device)?;
        let storage = backend.from_shared_bytes(dtype, bytes)?;
        Ok(Tensor::from_storage(storage, shape, backend))
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.checked_elem_count("zeros")?;
        let backend = backend::backend_for(*device)?;
        let storage = backend.zeros(dtype, n)?;
        Ok(Tensor::from_storage(storage, shape, backend))
    }

    pub fn full(
        value: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.checked_elem_count("full")?;
        let backend = backend::backend_for(*device)?;
        let storage = backend.full(dtype, n, value)?;
        Ok(Tensor::from_storage(storage, shape, backend))
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape().clone(), self.dtype(), &self.device())
    }

    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape().clone(), self.dtype(), &self.device())
    }

    /// `0, 1, ..., n-1` as `dtype`.
    pub fn arange(n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let host = match dtype {
            DType::U32 => HostBuffer::U32((0..n as u32).collect()),
            DType::I64 => HostBuffer::I64((0..n as i64).collect()),
            DType::F64 => HostBuffer::F64((0..n).map(|i| i as f64).collect()),
            _ => HostBuffer::F32((0..n).map(|i| i as f32).collect()),
        };
        let t = Tensor::from_host(host, n, device)?;
        if t.dtype() == dtype {
            Ok(t)
        } else {
            t.to_dtype(dtype)
        }
    }

    // ---- accessors ----------------------------------------------------------------

    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }

    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn device(&self) -> Device {
        self.0.device
    }

    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.0.backend
    }

    /// Whether both tensors view the same storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// Size of axis `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = self.shape().axis("dim", axis)?;
        Ok(self.dims()[a])
    }

    // ---- host interop -------------------------------------------------------------

    /// Row-major copy of the elements on the host.
    pub fn to_host(&self) -> Result<HostBuffer> {
        self.with_view(|b, v| b.to_host(v))
    }

    /// Row-major elements; the dtype must be `T`'s.
    pub fn to_vec<T: WithDType>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                lhs: self.dtype(),
                rhs: T::DTYPE,
            });
        }
        T::from_host(self.to_host()?)
    }

    /// The single element of a tensor with one element.
    pub fn to_scalar<T: WithDType>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::RankMismatch {
                op: "to_scalar",
                expected: "a single element".into(),
                shape: self.shape().clone(),
            });
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// Every element converted to f64, whatever the dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.to_host()?.to_f64_vec())
    }

    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device() == *device {
            return Ok(self.clone());
        }
        Tensor::from_host(self.to_host()?, self.shape().clone(), device)
    }

    pub fn to_ndarray<T: WithDType>(&self) -> Result<ndarray::ArrayD<T>> {
        let data = self.to_vec::<T>()?;
        ndarray::ArrayD::from_shape_vec(self.dims().to_vec(), data)
            .map_err(|e| Error::invalid("to_ndarray", e.to_string()))
    }

    pub fn from_ndarray<T: WithDType>(
        array: &ndarray::ArrayD<T>,
        device: &Device,
    ) -> Result<Tensor> {
        let data = array.iter().copied().collect::<Vec<_>>();
        Tensor::from_vec(data, array.shape().to_vec(), device)
    }

    // ---- views --------------------------------------------------------------------

    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_elem_count("reshape").ok() != Some(self.elem_count()) {
            return Err(Error::ElementCountMismatch {
                op: "reshape",
                from: self.shape().clone(),
                from_elems: self.elem_count(),
                to: shape.clone(),
                to_elems: shape.checked_elem_count("reshape").unwrap_or(usize::MAX),
            });
        }
        match self.layout().reshape(shape.clone()) {
            Some(layout) => Ok(self.with_layout(layout)),
            None => self.contiguous()?.reshape(shape),
        }
    }

    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(self.elem_count())
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let a = self.shape().axis("transpose", a)?;
        let b = self.shape().axis("transpose", b)?;
        Ok(self.with_layout(self.layout().transpose(a, b)))
    }

    /// Swaps the last two axes.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::RankMismatch {
                op: "t",
                expected: "at least 2".into(),
                shape: self.shape().clone(),
            });
        }
        self.transpose(-2, -1)
    }

    pub fn permute(&self, order: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout().permute("permute", order)?))
    }

    /// Elements `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let axis = self.shape().axis("narrow", axis)?;
        Ok(self.with_layout(self.layout().narrow("narrow", axis, start, len)?))
    }

    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        Ok(self.with_layout(self.layout().broadcast_to("broadcast_to", &shape.into())?))
    }

    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let resolved = if axis < 0 { axis + rank + 1 } else { axis };
        if resolved < 0 || resolved > rank {
            return Err(Error::AxisOutOfRange {
                op: "unsqueeze",
                axis,
                rank: self.rank(),
                shape: self.shape().clone(),
            });
        }
        Ok(self.with_layout(self.layout().unsqueeze(resolved as usize)))
    }

    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            return Err(Error::invalid(
                "squeeze",
                format!(
                    "axis {axis} has size {} (shape {}), not 1",
                    self.dims()[a],
                    self.shape()
                ),
            ));
        }
        Ok(self.with_layout(self.layout().squeeze(a)))
    }

    /// This tensor if it is contiguous, else a contiguous copy.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.force_contiguous()
    }

    /// Takes the storage's elements off any borrowed memory (a memory-mapped file) into
    /// memory it owns, in place: every view of the storage sees the same values. For
    /// parameters about to be updated in place, so the file mapping is released before
    /// gradients and optimizer state are allocated.
    pub fn make_owned(&self) {
        self.write().make_owned();
    }

    /// Runs `f` on this tensor's elements in place, borrowed from its storage (every
    /// view of the storage sees the writes), when the tensor is a contiguous f32
    /// tensor in host memory; `None` (and `f` not run) otherwise. The storage is locked
    /// for writing meanwhile, so `f` must not touch other views of it.
    pub fn with_host_f32_mut<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> Option<R> {
        if self.dtype() != DType::F32 {
            return None;
        }
        let range = self.layout().contiguous_range()?;
        let mut guard = self.write();
        let all = guard.host_f32_mut()?;
        all.get_mut(range).map(f)
    }

    /// A contiguous copy with its own storage, even when this tensor is contiguous.
    pub fn copy(&self) -> Result<Tensor> {
        self.force_contiguous()
    }

    fn force_contiguous(&self) -> Result<Tensor> {
        let out = Tensor::zeros(self.shape().clone(), self.dtype(), &self.device())?;
        out.copy_from(self)?;
        Ok(out)
    }

    /// Copies `src` element by element into this tensor's view (same shape and dtype);
    /// the storage is shared with every other view of it.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        self.check_same("copy_from", src)?;
        if self.shape() != src.shape() {
            return Err(Error::ShapeMismatch {
                op: "copy_from",
                lhs: self.shape().clone(),
                rhs: src.shape().clone(),
            });
        }
        if self.same_storage(src) {
            return Err(Error::invalid(
                "copy_from",
                "source and destination share storage",
            ));
        }
        let src_guard = src.read();
        let mut dst_guard = self.write();
        self.0.backend.copy_strided(
            View::new(&**src_guard, src.layout()),
            &mut **dst_guard,
            self.layout(),
        )
    }

    // ---- plumbing for ops ---------------------------------------------------------

    pub(crate) fn read_guard(&self) -> RwLockReadGuard<'_, BoxStorage> {
        self.read()
    }

    /// Whether no other tensor (clone or view) can see this tensor's storage, so
    /// writing to it in place is unobservable.
    pub fn is_sole_handle(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1
    }

    /// Whether an op may accumulate into this float tensor's storage in place: nothing
    /// else sees it and it holds exactly this tensor's elements in order.
    pub(crate) fn is_writable_in_place(&self) -> bool {
        self.is_sole_handle()
            && self.is_contiguous()
            && self.layout().offset() == 0
            && self.read().len() == self.elem_count()
            && self.dtype().is_float()
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, BoxStorage> {
        self.0.storage.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, BoxStorage> {
        self.0.storage.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Errors unless both tensors share device and dtype.
    pub(crate) fn check_same(&self, op: &'static str, other: &Tensor) -> Result<()> {
        self.check_device(op, other)?;
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
                expected: "a floating-point dtype",
            });
        }
        Ok(())
    }

    pub(crate) fn check_index_dtype(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_int() {
            return Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
                expected: "u32 or i64 indices",
            });
        }
        Ok(())
    }

    pub(crate) fn with_view<R>(
        &self,
        f: impl FnOnce(&dyn Backend, View<'_>) -> Result<R>,
    ) -> Result<R> {
        let guard = self.read();
        f(&*self.0.backend, View::new(&**guard, self.layout()))
    }

    /// Read access to several tensors at once (all on this device), locking each
    /// distinct storage once so that `x * x` does not take the same lock twice.
    pub(crate) fn with_views<const N: usize, R>(
        op: &'static str,
        tensors: [&Tensor; N],
        f: impl FnOnce(&dyn Backend, [View<'_>; N]) -> Result<R>,
    ) -> Result<R> {
        Tensor::with_view_list(op, &tensors, |backend, views| {
            let views: [View<'_>; N] = std::array::from_fn(|i| views[i]);
            f(backend, views)
        })
    }

    /// [`Tensor::with_views`] for a number of tensors known at run time (at least one).
    pub(crate) fn with_view_list<R>(
        op: &'static str,
        tensors: &[&Tensor],
        f: impl FnOnce(&dyn Backend, &[View<'_>]) -> Result<R>,
    ) -> Result<R> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid(op, "needs at least one tensor"))?;
        for t in &tensors[1..] {
            first.check_device(op, t)?;
        }
        let mut guards: Vec<(*const RwLock<BoxStorage>, RwLockReadGuard<'_, BoxStorage>)> =
            Vec::with_capacity(tensors.len());
        let mut slot = Vec::with_capacity(tensors.len());
        for t in tensors {
            let ptr = Arc::as_ptr(&t.0.storage);
            slot.push(match guards.iter().position(|(p, _)| *p == ptr) {
                Some(j) => j,
                None => {
                    guards.push((ptr, t.read()));
                    guards.len() - 1
                }
            });
        }
        let views: Vec<View<'_>> = tensors
            .iter()
            .zip(&slot)
            .map(|(t, &j)| View::new(&**guards[j].1, t.layout()))
            .collect();
        f(&*first.0.backend, &views)
    }

    /// A new tensor of `shape` from storage a backend returned.
    pub(crate) fn wrap(&self, storage: BoxStorage, shape: impl Into<Shape>) -> Tensor {
        Tensor::from_storage(storage, shape, self.0.backend.clone())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor[{}; {}; {}]",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}
