"""Engine sidecar and cache key (ifrt.engine): pure Python, no TensorRT or GPU. The key vector and the
messages are the same as csrc/tests/test_engine_sidecar.cpp, so Python and C++ agree on when an engine
is stale."""

import hashlib
import json

import pytest

from ifrt.engine import (
    EngineBuildSpec,
    GpuIdentity,
    SidecarError,
    cache_engine_name,
    cache_key,
    cache_key_text,
    default_image_profile,
    default_profile_text,
    expand_profiles,
    external_data_sha256,
    make_sidecar,
    parse_profile,
    parse_profiles,
    profiles_text,
    read_sidecar,
    sidecar_mismatches,
    sidecar_path,
    tensorrt_major,
    tensorrt_version_triple,
    validate_sidecar,
)
from ifrt.imageio import write_bytes_atomic as write_atomic

ORIN = GpuIdentity("Orin", "8.7", "GPU-12345678-90ab-cdef-1234-567890abcdef")
PROFILE = {"image": {"min": [1, 1, 256, 256], "opt": [1, 1, 512, 512], "max": [4, 1, 1024, 1024]}}


def orin_spec(**changes) -> EngineBuildSpec:
    spec = EngineBuildSpec(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu=ORIN, precision="fp16",
                           profiles=[PROFILE], workspace_bytes=1 << 30, dla_core=-1)
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def orin_sidecar(**changes) -> dict:
    return make_sidecar(orin_spec(**changes), engine_sha256="e" * 64, strongly_typed=False, ifrt_version="0.1.0")


def here(**changes) -> dict:
    """Expectation of the machine the Orin engine was built on."""
    want = dict(tensorrt_version="10.3.0", gpu=ORIN, onnx_sha256="ab" * 32, engine_sha256="e" * 64,
                precision="fp16", profiles=[PROFILE], workspace_bytes=1 << 30, dla_core=-1)
    want.update(changes)
    return want


def test_cache_key_matches_the_cpp_vector():
    assert cache_key_text(orin_spec()).splitlines() == [
        "ifrt-engine-cache/2",
        "onnx_sha256=" + "ab" * 32,
        "external_data_sha256=",
        "tensorrt_version=10.3.0",
        "gpu_uuid=GPU-12345678-90ab-cdef-1234-567890abcdef",
        "precision=fp16",
        "profiles=image:1x1x256x256/1x1x512x512/4x1x1024x1024",
        "default_profile=",
        "concurrency=1",
        "workspace_bytes=1073741824",
        "dla_core=-1",
    ]
    assert cache_key(orin_spec()) == "d420e2e63cfcf5e301f6979bd97cce2fd31c7ce42229fc66f74389126f3b0c32"


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "cd" * 32},
    {"tensorrt_version": "10.3.1"},
    {"gpu": GpuIdentity("Orin", "8.7", "GPU-00000000-0000-0000-0000-000000000000")},
    {"precision": "fp32"},
    {"profiles": [{"image": {**PROFILE["image"], "max": [8, 1, 1024, 1024]}}]},
    {"concurrency": 2},
    {"workspace_bytes": 2 << 30},
    {"dla_core": 0},
    {"external_data_sha256": "f" * 64},
])
def test_every_field_that_makes_an_engine_valid_changes_the_cache_key(change):
    assert cache_key(orin_spec(**change)) != cache_key(orin_spec())


def test_gpu_name_alone_does_not_change_the_cache_key_because_the_uuid_already_names_the_device():
    assert cache_key(orin_spec(gpu=GpuIdentity("Jetson AGX Orin", "8.7", ORIN.uuid))) == cache_key(orin_spec())


def test_without_profiles_the_key_records_the_default_profile_so_new_defaults_rebuild():
    assert default_profile_text() == "image:1x32x32x32/1x512x512x512/4x1024x1024x1024"
    lines = cache_key_text(orin_spec(profiles=[])).splitlines()
    assert lines[6:8] == ["profiles=", "default_profile=image:1x32x32x32/1x512x512x512/4x1024x1024x1024"]


def test_default_image_profile_fills_dynamic_dims_and_keeps_static_ones():
    assert default_image_profile([-1, 1, -1, -1]) == {
        "image": {"min": [1, 1, 32, 32], "opt": [1, 1, 512, 512], "max": [4, 1, 1024, 1024]}}
    assert default_image_profile([1, 1, 256, -1])["image"]["max"] == [1, 1, 256, 1024]


def test_sidecar_records_built_profiles_while_the_key_stays_that_of_the_request():
    spec = orin_spec(profiles=[])
    built = [default_image_profile([-1, 1, -1, -1])]
    sidecar = make_sidecar(spec, engine_sha256="e" * 64, strongly_typed=False, ifrt_version="0.1.0",
                           built_profiles=built)
    assert sidecar["profiles"] == built
    assert sidecar["cache_key"] == cache_key(spec)


def test_cached_engine_name_is_onnx_stem_and_16_key_digits():
    assert cache_engine_name("/models/full.onnx", orin_spec()) == f"full-{cache_key(orin_spec())[:16]}.engine"


def test_profiles_text_round_trips_and_concurrency_repeats_profiles():
    text = "image:1x1x256x256/1x1x512x512/4x1x1024x1024"
    assert profiles_text([PROFILE]) == text
    assert parse_profiles(text) == [PROFILE]
    assert parse_profiles("") == []
    assert profiles_text(expand_profiles([PROFILE], 2)) == f"{text};{text}"


@pytest.mark.parametrize("text, message", [
    ("image:1x1x512/1x1x256/1x1x1024", "dim 2 must satisfy min <= opt <= max"),
    ("image:1x1x-1/1/1", "'1x1x-1' is not a shape like 1x1x512x512"),
    ("image=1x1x8x8", "is not INPUT:MIN/OPT/MAX"),
    ("image:1x1/1x1x2/1x1x3", "same rank"),
])
def test_bad_profile_text_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        parse_profile(text)


def test_tensorrt_version_keeps_major_minor_patch():
    assert tensorrt_version_triple("10.3.0.26") == "10.3.0"
    assert tensorrt_version_triple("10.7.0.post1") == "10.7.0"
    assert tensorrt_major("11.1.0") == 11


def test_engine_on_the_machine_that_built_it_has_no_mismatch():
    assert sidecar_mismatches(orin_sidecar(), **here()) == []


def test_other_tensorrt_version_is_refused_with_both_versions():
    reasons = sidecar_mismatches(orin_sidecar(), **here(tensorrt_version="11.1.0"))
    assert reasons == ["built with TensorRT 10.3.0, this is TensorRT 11.1.0 "
                       "(an engine loads only in the TensorRT version that built it)"]


def test_other_compute_capability_is_refused_naming_both_gpus():
    rtx = GpuIdentity("NVIDIA GeForce RTX 4090", "8.9", "GPU-ffffffff-0000-0000-0000-000000000000")
    reasons = sidecar_mismatches(orin_sidecar(), **here(gpu=rtx))
    assert reasons == ["built for compute capability 8.7 (Orin), this GPU is 8.9 (NVIDIA GeForce RTX 4090)"]


def test_other_gpu_name_with_same_compute_capability_is_refused():
    a10 = GpuIdentity("NVIDIA A10", "8.6", "GPU-1")
    sidecar = make_sidecar(orin_spec(gpu=GpuIdentity("NVIDIA GeForce RTX 3090", "8.6", "GPU-2")),
                           engine_sha256="e" * 64, strongly_typed=False, ifrt_version="0.1.0")
    assert sidecar_mismatches(sidecar, gpu=a10) == ["built on a NVIDIA GeForce RTX 3090, this GPU is a NVIDIA A10"]


def test_identical_gpu_model_is_refused_unless_allowed():
    twin = GpuIdentity("Orin", "8.7", "GPU-ffffffff-0000-0000-0000-000000000000")
    reasons = sidecar_mismatches(orin_sidecar(), **here(gpu=twin))
    assert len(reasons) == 1 and "same model, Orin" in reasons[0]
    assert sidecar_mismatches(orin_sidecar(), **here(gpu=twin), allow_same_model_gpu=True) == []


def test_changed_onnx_and_changed_engine_file_are_refused():
    reasons = sidecar_mismatches(orin_sidecar(), **here(onnx_sha256="c" * 64, engine_sha256="d" * 64))
    assert reasons == [
        "built from ONNX sha256 abababababab..., the ONNX given is cccccccccccc...",
        "engine file sha256 dddddddddddd... differs from the sidecar's eeeeeeeeeeee... "
        "(the file changed after it was built, or is corrupt)",
    ]


def test_changed_external_data_is_refused_and_a_sidecar_from_before_it_was_recorded_reads_as_none():
    reasons = sidecar_mismatches(orin_sidecar(), **here(external_data_sha256="f" * 64))
    assert reasons == ["built with no external data, the ONNX given has external data sha256 ffffffffffff... "
                       "(the files its tensors are kept in changed)"]
    older = orin_sidecar()
    del older["external_data_sha256"]
    assert sidecar_mismatches(validate_sidecar(older), **here(external_data_sha256="")) == []


def test_external_data_hash_follows_the_files_the_onnx_names_beside_it(tmp_path):
    entry = b"\x0a\x08location\x12\x0dmodel.weights"
    (tmp_path / "plain.onnx").write_bytes(b"\x08\x07graph")
    assert external_data_sha256(tmp_path / "plain.onnx") == ""
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07" + entry + entry + b"\x0a\x08location\x12\x0aabsent.bin")
    (tmp_path / "model.weights").write_bytes(b"weights v1")
    v1 = external_data_sha256(tmp_path / "model.onnx")
    weights_v1 = hashlib.sha256(b"weights v1").hexdigest()
    assert v1 == hashlib.sha256(f"10:absent.bin -\n13:model.weights {weights_v1}\n".encode()).hexdigest()
    (tmp_path / "model.weights").write_bytes(b"weights v2")
    assert external_data_sha256(tmp_path / "model.onnx") not in ("", v1)


def test_build_option_mismatches_each_give_a_reason():
    reasons = sidecar_mismatches(orin_sidecar(), **here(precision="fp32", dla_core=0, workspace_bytes=0,
                                                        profiles=expand_profiles([PROFILE], 2), concurrency=2))
    assert "built for precision fp16, fp32 was asked for" in reasons
    assert "built for DLA core -1, asked for 0 (-1 means GPU only)" in reasons
    assert "built with workspace 1073741824 bytes, asked for 0" in reasons
    assert any(r.startswith("built with profiles image:1x1x256x256/") for r in reasons)
    assert "built for 1 concurrent context(s) per profile, asked for 2" in reasons
    assert len(reasons) == 5


def test_unchecked_fields_are_ignored():
    assert sidecar_mismatches(orin_sidecar(), tensorrt_version="10.3.0") == []


def test_sidecar_json_round_trip_through_disk(tmp_path):
    engine = tmp_path / "full.engine"
    assert sidecar_path(engine) == tmp_path / "full.engine.json"
    sidecar = orin_sidecar()
    write_atomic(sidecar_path(engine), json.dumps(sidecar, indent=2).encode())
    assert read_sidecar(sidecar_path(engine)) == sidecar
    assert list(sidecar) == ["format", "ifrt_version", "tensorrt_version", "gpu", "precision", "strongly_typed",
                             "profiles", "concurrency", "workspace_bytes", "dla_core", "onnx_sha256",
                             "external_data_sha256", "engine_sha256", "cache_key"]
    assert [p.name for p in tmp_path.iterdir()] == ["full.engine.json"]  # no temporary file left behind


def test_missing_sidecar_is_named(tmp_path):
    with pytest.raises(SidecarError, match="full.engine.json: engine sidecar not found"):
        read_sidecar(tmp_path / "full.engine.json")


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(format="other/2"), "format 'other/2' is not ifrt.engine/1"),
    (lambda s: s.clear(), 'missing "format" \\(not an ifrt engine sidecar\\)'),
    (lambda s: s.pop("onnx_sha256"), 'missing "onnx_sha256"'),
    (lambda s: s.update(dla_core="0"), '"dla_core" must be int'),
    (lambda s: s["gpu"].pop("uuid"), '"gpu.uuid" must be a string'),
])
def test_malformed_sidecar_is_refused_naming_the_field(edit, message):
    sidecar = orin_sidecar()
    edit(sidecar)
    with pytest.raises(SidecarError, match=message):
        validate_sidecar(sidecar)
