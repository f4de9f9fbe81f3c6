// The check behind noether.core.optimizer.lion.step_check: does a parameter group's kept C-kernel decision still
// hold at this step? One pass over the group in compiled code, instead of a dozen Python-level passes.
//
// It answers exactly what the optimizer's Python checks answer when they let a kept decision run (see
// DispatchCache in dispatch.py), and anything it is unsure of is a "no", after which the optimizer runs those Python
// checks (which raise the proper error, or decide again). So this file can make a step faster, never different.
//
// Per parameter i of the group, all of:
//   * params[i] is plan_params[i], and is the state dict's key at offset + i (the snapshot taken this step);
//   * that key's state is a plain dict whose "exp_avg" (and, with Kahan summation, "kahan_comp") is the plan's
//     tensor, whose data pointer has not moved;
//   * the parameter is a CPU tensor of the plan's dtype, contiguous, with the plan's data pointer and byte size;
//   * its gradient exists, is strided (not sparse), of exactly one of the allowed Python types (no subclass), on
//     the CPU, of the plan's dtype, contiguous, with the parameter's byte size.
// Then the gradients' data pointers are written to `out` for the C kernel. Pointers are read with data_ptr(), as
// Tensor.data_ptr() reads them from Python (it materializes a lazily copied storage before anything writes to it).

#include <Python.h>
#include <torch/csrc/Dtype.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstdint>
#include <exception>

namespace {

PyObject* exp_avg_key = nullptr;
PyObject* kahan_comp_key = nullptr;

const std::uint64_t* address(PyObject* value) {
    return static_cast<const std::uint64_t*>(PyLong_AsVoidPtr(value));
}

// -1: a Python error is set; 0: the decision does not hold (or this code is unsure); 1: it holds.
int holds(PyObject* const* args) {
    PyObject* params = args[0];
    PyObject* keys = args[1];
    PyObject* values = args[2];
    Py_ssize_t offset = PyLong_AsSsize_t(args[3]);
    PyObject* plan_params = args[4];
    PyObject* plan_exp_avgs = args[5];
    PyObject* plan_comps = args[6];
    const std::uint64_t* p_ptrs = address(args[7]);
    const std::uint64_t* m_ptrs = address(args[8]);
    const std::uint64_t* c_ptrs = address(args[9]);
    const std::uint64_t* nbytes = address(args[10]);
    PyObject* dtype_object = args[11];
    auto* out = const_cast<std::uint64_t*>(address(args[12]));
    PyObject* plain_types = args[13];
    if (PyErr_Occurred()) return -1;
    if (!PyList_CheckExact(params) || !PyList_CheckExact(keys) || !PyList_CheckExact(values) ||
        !PyList_CheckExact(plan_params) || !PyList_CheckExact(plan_exp_avgs) || !PyTuple_CheckExact(plain_types) ||
        !THPDtype_Check(dtype_object)) {
        PyErr_SetString(PyExc_TypeError, "step_check.holds: unexpected argument types");
        return -1;
    }
    const bool kahan = plan_comps != Py_None;
    if (kahan && !PyList_CheckExact(plan_comps)) {
        PyErr_SetString(PyExc_TypeError, "step_check.holds: plan_comps must be a list or None");
        return -1;
    }
    const Py_ssize_t n = PyList_GET_SIZE(params);
    if (n == 0 || n != PyList_GET_SIZE(plan_params) || n != PyList_GET_SIZE(plan_exp_avgs) ||
        (kahan && n != PyList_GET_SIZE(plan_comps)) || offset < 0 || offset + n > PyList_GET_SIZE(keys) ||
        PyList_GET_SIZE(keys) != PyList_GET_SIZE(values)) {
        return 0;
    }
    const at::ScalarType dtype = reinterpret_cast<THPDtype*>(dtype_object)->scalar_type;
    const Py_ssize_t n_types = PyTuple_GET_SIZE(plain_types);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* param = PyList_GET_ITEM(params, i);
        if (param != PyList_GET_ITEM(plan_params, i) || param != PyList_GET_ITEM(keys, offset + i)) return 0;
        PyObject* state = PyList_GET_ITEM(values, offset + i);
        if (!PyDict_CheckExact(state)) return 0;
        // Identity with the plan's tensors comes before unpacking: only objects known to be tensors are unpacked.
        PyObject* exp_avg = PyDict_GetItemWithError(state, exp_avg_key);
        if (exp_avg == nullptr && PyErr_Occurred()) return -1;
        if (exp_avg != PyList_GET_ITEM(plan_exp_avgs, i)) return 0;
        PyObject* comp = nullptr;
        if (kahan) {
            comp = PyDict_GetItemWithError(state, kahan_comp_key);
            if (comp == nullptr && PyErr_Occurred()) return -1;
            if (comp != PyList_GET_ITEM(plan_comps, i)) return 0;
        }
        const at::Tensor& p = THPVariable_Unpack(param);
        if (!p.is_cpu() || p.scalar_type() != dtype || reinterpret_cast<std::uint64_t>(p.data_ptr()) != p_ptrs[i] ||
            p.nbytes() != nbytes[i] || !p.is_contiguous()) {
            return 0;
        }
        if (reinterpret_cast<std::uint64_t>(THPVariable_Unpack(exp_avg).data_ptr()) != m_ptrs[i]) return 0;
        if (kahan && reinterpret_cast<std::uint64_t>(THPVariable_Unpack(comp).data_ptr()) != c_ptrs[i]) return 0;
        const at::Tensor& g = p.grad();
        if (!g.defined() || g.layout() != at::kStrided || !g.is_cpu() || g.scalar_type() != dtype ||
            g.nbytes() != nbytes[i] || !g.is_contiguous()) {
            return 0;
        }
        // The gradient's Python type, as type(p.grad) reads it (a subclass takes the Python path).
        PyObject* wrapped = THPVariable_Wrap(g);
        if (wrapped == nullptr) return -1;
        PyTypeObject* type = Py_TYPE(wrapped);
        Py_DECREF(wrapped);
        bool plain = false;
        for (Py_ssize_t t = 0; t < n_types; ++t) plain |= reinterpret_cast<PyObject*>(type) == PyTuple_GET_ITEM(plain_types, t);
        if (!plain) return 0;
        out[i] = reinterpret_cast<std::uint64_t>(g.data_ptr());
    }
    return 1;
}

PyObject* holds_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 14) {
        PyErr_Format(PyExc_TypeError, "step_check.holds takes 14 arguments (%zd given)", nargs);
        return nullptr;
    }
    int result = 0;
    try {
        result = holds(args);
    } catch (const std::exception&) {  // a tensor this code cannot read: the Python checks decide (and explain)
        result = 0;
    }
    if (result < 0) return nullptr;
    return PyBool_FromLong(result);
}

PyMethodDef methods[] = {
    {"holds", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(holds_entry)), METH_FASTCALL,
     "holds(params, keys, values, offset, plan_params, plan_exp_avgs, plan_comps, p_ptrs, m_ptrs, c_ptrs, nbytes, "
     "dtype, out, plain_types) -> bool"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "noether_lion_step_check", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit_noether_lion_step_check(void) {
    exp_avg_key = PyUnicode_InternFromString("exp_avg");
    kahan_comp_key = PyUnicode_InternFromString("kahan_comp");
    if (exp_avg_key == nullptr || kahan_comp_key == nullptr) return nullptr;
    return PyModule_Create(&module);
}
