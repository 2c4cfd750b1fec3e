//! A loop method whose bound form the loop keeps: `call_soon`.
//!
//! Two kinds of caller reach `call_soon`. Python code (`loop.call_soon(cb)`) loads it as a
//! method: CPython specialises that load, and calls the class attribute with the loop as first
//! argument, no bound method made, as long as the instance dict does not hold the name.
//! asyncio's C tasks and futures before 3.12 read it as an attribute (to pass `context=` by
//! keyword) on every task step and done callback, which binds a new method each time.
//!
//! So the class attribute is a method descriptor of its own type: called as a method, it goes
//! straight to the fastcall function; read as an attribute of an open loop, it returns the
//! bound method the loop keeps (made on first use, dropped by `close()`), not a new one. Read
//! from the class, it is the plain method descriptor (name, signature and docstring).

use std::ffi::{c_int, c_void};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use super::event_loop::LoopCore;
use super::fastcall::{self, FastcallMethod};
use super::gil_cell::GilCell;

/// Where the loop keeps a method's bound form.
pub type KeptBound = GilCell<Option<Py<PyAny>>>;

type FastcallFn = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

#[repr(C)]
struct KeptBoundMethod {
    ob_base: ffi::PyObject,
    /// CPython calls through this (the type's vectorcall offset points here).
    vectorcall: ffi::vectorcallfunc,
    /// The plain method descriptor, for reads from the class and the binding itself.
    plain: *mut ffi::PyObject,
    function: FastcallFn,
    kept: fn(&LoopCore) -> &KeptBound,
    /// LoopCore's type.
    owner: *mut ffi::PyTypeObject,
}

impl KeptBoundMethod {
    /// Whether `obj` is a loop. The Python face's loop class has LoopCore as its direct base:
    /// two loads, before the general (MRO-walking) test.
    unsafe fn applies_to(&self, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: `obj` is a live object.
        unsafe {
            let tp = ffi::Py_TYPE(obj);
            tp == self.owner
                || (*tp).tp_base == self.owner
                || ffi::PyType_IsSubtype(tp, self.owner) != 0
        }
    }
}

/// Puts `M` on the loop's native type as a method whose bound form `kept` holds.
pub fn install<M: FastcallMethod>(
    loop_type: &Bound<'_, PyType>,
    kept: fn(&LoopCore) -> &KeptBound,
) -> PyResult<()> {
    let py = loop_type.py();
    let plain = fastcall::method_descriptor::<M>(loop_type)?;
    let tp = descriptor_type(py)?;
    // SAFETY: a fresh instance of our own type, every field written before it is shared. The
    // type lives as long as the process (it is never released), and so does the instance,
    // owned by the loop type's dict.
    let descriptor = unsafe {
        let object = ffi::PyType_GenericAlloc(tp, 0);
        let object = Bound::from_owned_ptr_or_err(py, object)?;
        let this = object.as_ptr().cast::<KeptBoundMethod>();
        (*this).vectorcall = call;
        (*this).plain = plain.into_ptr();
        (*this).function = fastcall::trampoline::<M>;
        (*this).kept = kept;
        (*this).owner = loop_type.as_type_ptr();
        object
    };
    loop_type.setattr(M::NAME, descriptor)
}

/// The descriptors' type, made once (`PyType_FromSpec` copies what it needs from the spec).
fn descriptor_type(py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    static TYPE: pyo3::sync::PyOnceLock<Py<PyType>> = pyo3::sync::PyOnceLock::new();
    let tp = TYPE.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let members = Box::leak(Box::new([
            ffi::PyMemberDef {
                name: c"__vectorcalloffset__".as_ptr(),
                type_code: ffi::Py_T_PYSSIZET,
                offset: std::mem::offset_of!(KeptBoundMethod, vectorcall) as ffi::Py_ssize_t,
                flags: ffi::Py_READONLY,
                doc: ptr::null(),
            },
            // SAFETY: all-zero is the sentinel CPython looks for.
            unsafe { std::mem::zeroed() },
        ]));
        let slots = Box::leak(Box::new([
            slot(ffi::Py_tp_descr_get, descr_get as *mut c_void),
            slot(ffi::Py_tp_call, ffi::PyVectorcall_Call as *mut c_void),
            slot(ffi::Py_tp_members, members.as_mut_ptr().cast()),
            slot(0, ptr::null_mut()),
        ]));
        let spec = Box::leak(Box::new(ffi::PyType_Spec {
            name: c"ferroloop._ferroloop.kept_bound_method".as_ptr(),
            basicsize: std::mem::size_of::<KeptBoundMethod>() as c_int,
            itemsize: 0,
            flags: (ffi::Py_TPFLAGS_DEFAULT
                | ffi::Py_TPFLAGS_IMMUTABLETYPE
                | ffi::Py_TPFLAGS_METHOD_DESCRIPTOR
                | ffi::Py_TPFLAGS_HAVE_VECTORCALL) as _,
            slots: slots.as_mut_ptr(),
        }));
        // SAFETY: a complete spec, leaked: it outlives the type.
        unsafe {
            Ok(
                Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(spec))?
                    .cast_into()?
                    .unbind(),
            )
        }
    })?;
    Ok(tp.bind(py).as_type_ptr())
}

fn slot(slot: c_int, pfunc: *mut c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot { slot, pfunc }
}

/// Called as a method: `args[0]` is the loop.
unsafe extern "C" fn call(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls us with one of our instances and a valid argument vector.
    unsafe {
        let this = callable.cast::<KeptBoundMethod>();
        let nargs = ffi::PyVectorcall_NARGS(nargsf);
        if nargs < 1 || !(*this).applies_to(*args) {
            // The plain descriptor raises CPython's TypeError for a missing or wrong `self`.
            return ffi::PyObject_Vectorcall((*this).plain, args, nargsf, kwnames);
        }
        ((*this).function)(*args, args.add(1), nargs - 1, kwnames)
    }
}

/// Read as an attribute: the loop's kept bound method, or from the class, the plain descriptor.
unsafe extern "C" fn descr_get(
    descriptor: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    owner: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls us with one of our instances; `obj` and `owner` are borrowed.
    unsafe {
        let this = descriptor.cast::<KeptBoundMethod>();
        let plain = (*this).plain;
        let py = Python::assume_attached();
        if obj.is_null() || !(*this).applies_to(obj) {
            return bind_plain(plain, obj, owner);
        }
        let core = Borrowed::from_ptr(py, obj).cast_unchecked::<LoopCore>();
        let core = core.get();
        let kept = ((*this).kept)(core);
        if let Some(bound) = &*kept.borrow(py) {
            return bound.clone_ref(py).into_ptr();
        }
        let bound = bind_plain(plain, obj, owner);
        if !bound.is_null() && !core.closed.get(py) {
            // A cycle (loop -> bound method -> loop) the loop reports to the GC and
            // `close()` breaks.
            ffi::Py_INCREF(bound);
            *kept.borrow_mut(py) = Some(Bound::from_owned_ptr(py, bound).unbind());
        }
        bound
    }
}

/// What the plain method descriptor gives for `descriptor.__get__(obj, owner)`.
unsafe fn bind_plain(
    plain: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    owner: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: `plain` is a live method descriptor; the others are as CPython passed them.
    unsafe {
        match (*ffi::Py_TYPE(plain)).tp_descr_get {
            Some(get) => get(plain, obj, owner),
            None => {
                ffi::Py_INCREF(plain);
                plain
            }
        }
    }
}

/// Lets the kept bound method go (on close, and for the GC's `__clear__`).
pub fn release(py: Python<'_>, kept: &KeptBound) {
    let taken = kept.borrow_mut(py).take();
    drop(taken);
}
