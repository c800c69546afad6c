"""A DLPack producer written in the tests: a tensor over memory the test owns (a numpy array, or a torch CUDA
tensor's storage) that reports the device it is told to, records the stream each __dlpack__ call is given and
calls back when the consumer runs its deleter, which is the consumer saying it is done with the memory."""

import ctypes

import numpy as np

KDL_CPU, KDL_CUDA = 1, 2
_DTYPES = {np.dtype(np.uint8): (1, 8), np.dtype(np.uint16): (1, 16), np.dtype(np.float16): (2, 16),
           np.dtype(np.float32): (2, 32)}
_CAPSULE_NAME = b"dltensor_versioned"


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _ManagedVersioned(ctypes.Structure):
    pass


_Deleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ManagedVersioned))
_ManagedVersioned._fields_ = [("version", _Version), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter),
                              ("flags", ctypes.c_uint64), ("dl_tensor", _Tensor)]

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Producer:
    """A DLPack 1.0 producer of a tensor at `data` (an address) of `shape` and numpy `dtype`, row-major, on
    `device_type`. `streams` lists the stream argument of each __dlpack__ call; `deleted` counts the deleter's
    runs, and `on_delete` (if given) is called from the deleter."""

    def __init__(self, data: int, shape, dtype, device_type: int = KDL_CPU, device_id: int = 0, on_delete=None):
        self.data, self.shape, self.dtype = data, tuple(shape), np.dtype(dtype)
        self.device = (device_type, device_id)
        self.streams: list = []
        self.deleted = 0
        self._on_delete = on_delete
        self._deleter = _Deleter(self._delete)
        self._keep: list = []  # the structures the capsules point into

    @classmethod
    def of_array(cls, array: np.ndarray, device_type: int = KDL_CPU, **kwargs) -> "Producer":
        producer = cls(array.ctypes.data, array.shape, array.dtype, device_type, **kwargs)
        producer._keep.append(array)
        return producer

    def _delete(self, _managed) -> None:
        self.deleted += 1
        if self._on_delete:
            self._on_delete()

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.streams.append(stream)
        ndim = len(self.shape)
        shape = (ctypes.c_int64 * ndim)(*self.shape)
        managed = _ManagedVersioned()
        managed.version = _Version(1, 0)
        managed.deleter = self._deleter
        managed.dl_tensor = _Tensor(self.data, _Device(*self.device), ndim, _DataType(*_DTYPES[self.dtype], 1),
                                    shape, None, 0)
        self._keep += [shape, managed]
        return _capsule_new(ctypes.addressof(managed), _CAPSULE_NAME, None)
