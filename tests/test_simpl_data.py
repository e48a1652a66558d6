"""SIMPL on a lab's own data: the estimator on arrays, the same fit from .npz, HDF5 and NWB files,
decoding held-out spikes, every bad input as one line, and the three latent spaces recovered."""
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from tcnet import ConfigError
from tcnet.cli import main as cli_main
from tcnet_plugins.simpl import SIMPL
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.inputs import InterpolatedWarning
from tcnet_plugins.simpl.metrics import validation_mask
from tcnet_plugins.simpl.space import Space

DT = 0.1


@pytest.fixture(scope="module")
def recording():
    """A small linear-track recording with a 20 s gap (bins 300..499 dropped)."""
    d = simdata.generate(1, kind="linear_track", n_cells=25, duration=120.0)
    keep = np.ones(len(d["time"]), bool)
    keep[300:500] = False
    return {k: d[k][keep] for k in ("counts", "behaviour", "time", "truth")}


def write_nwb(path, counts, behaviour, time, seed=0):
    """An NWB file with each bin's spikes at random times inside the bin and behaviour sampled at
    the bin starts."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries

    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="SIMPL test", identifier="simpl-test",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for n in range(counts.shape[1]):
        times = np.repeat(time, counts[:, n]) + rng.uniform(0.05, 0.95, counts[:, n].sum()) * DT
        nwb.add_unit(spike_times=np.sort(times))
    module = nwb.create_processing_module(name="behavior", description="tracking")
    module.add(Position(spatial_series=SpatialSeries(name="position", data=behaviour, timestamps=time,
                                                     reference_frame="track start", unit="m")))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_arrays_npz_hdf5_and_nwb_give_identical_fits(tmp_path, recording, capsys):
    r = recording
    model = SIMPL(iterations=2, dt=DT).fit(r["counts"], r["behaviour"], r["time"])
    assert model.latent_.shape == (len(r["time"]), 1) and model.fields_.shape[0] == 25
    assert list(model.network_.starts) == [0, 300]  # the gap splits the smoother
    np.savez(tmp_path / "rec.npz", counts=r["counts"], behaviour=r["behaviour"], time=r["time"])
    with h5py.File(tmp_path / "rec.h5", "w") as f:
        for key in ("counts", "behaviour", "time"):
            f[key] = r[key]
    write_nwb(tmp_path / "rec.nwb", r["counts"], r["behaviour"][:, 0], r["time"])
    for name in ("rec.npz", "rec.h5", "rec.nwb"):
        out = tmp_path / f"fit_{name}.npz"
        assert cli_main(["simpl", "fit", str(tmp_path / name), "--iterations", "2", "--dt", str(DT),
                         "--out", str(out)]) == 0, capsys.readouterr().err
        with np.load(out) as f:
            np.testing.assert_array_equal(f["time"], r["time"])
            np.testing.assert_array_equal(f["latent"], model.latent_)
            np.testing.assert_array_equal(f["fields"], model.fields_)


def test_a_fitted_model_decodes_held_out_spikes(recording):
    """Fit on the first 80 % of a longer recording, decode the last 20 % from spikes alone."""
    d = simdata.generate(2, kind="linear_track", n_cells=40, duration=600.0)
    cut = int(0.8 * len(d["time"]))
    model = SIMPL(iterations=4).fit(d["counts"][:cut], d["behaviour"][:cut], d["time"][:cut], truth=d["truth"][:cut])
    decoded = model.predict(d["counts"][cut:])
    space = Space("linear", 1)
    held_out = space.error(decoded, d["truth"][cut:])
    behaviour = space.error(d["behaviour"][cut:], d["truth"][cut:])
    print(f"held-out decoding error {100 * held_out:.1f} cm (behaviour {100 * behaviour:.1f} cm, "
          f"fit {100 * model.history_[-1]['latent_error']:.1f} cm)")
    assert held_out < behaviour / 2
    with pytest.raises(ConfigError, match="counts must have 40 columns"):
        model.predict(d["counts"][cut:, :3])


def test_missing_behaviour_is_interpolated_and_said_so():
    t = np.arange(6) * DT
    y = np.ones((6, 2), int)
    b = np.array([0.0, 0.1, np.nan, np.nan, 0.4, 0.5])
    from tcnet_plugins.simpl.inputs import check_inputs

    with pytest.warns(InterpolatedWarning, match="interpolated 2 sample"):
        got = check_inputs(y, b, t, missing=np.isnan(b))
    np.testing.assert_allclose(got.behaviour[:, 0], [0, 0.1, 0.2, 0.3, 0.4, 0.5])
    angle = np.array([6.0, 6.2, np.nan, 0.3, 0.5, 0.7])  # crosses 2 pi while missing
    with pytest.warns(InterpolatedWarning, match="along the circle"):
        got = check_inputs(y, angle, t, missing=np.isnan(angle), angular=True)
    assert got.behaviour[2, 0] == pytest.approx(np.mod((6.2 + 0.3 + 2 * np.pi) / 2, 2 * np.pi))


def _bad(**change):
    t = np.arange(8) * DT
    arrays = {"counts": np.ones((8, 3), int), "behaviour": np.linspace(0, 1, 8), "time": t}
    settings = {}
    for key, value in change.items():
        if key in ("dt",):
            settings[key] = value
        elif callable(value):
            arrays[key] = value(arrays[key].astype(float) if key != "missing" else None)
        else:
            arrays[key] = value
    return arrays, settings


def _set(index, value):
    def f(a):
        a = a.copy()
        a[index] = value
        return a
    return f


BAD = [
    ({"counts": _set((3, 1), -1)}, "counts[3, 1] = -1.0: counts must be non-negative"),
    ({"counts": _set((2, 0), np.nan)}, "counts[2, 0] = nan: counts must be finite"),
    ({"counts": _set((5, 2), 1.5)}, "counts[5, 2] = 1.5: counts must be integers"),
    ({"counts": np.ones(8)}, "counts must have 2 dimension(s)"),
    ({"behaviour": _set(4, np.nan)}, "behaviour[4, 0] = nan: behaviour must be finite (mark tracking losses"),
    ({"behaviour": _set(4, np.inf), "missing": np.eye(8, dtype=bool)[1]},
     "behaviour[4, 0] = inf: behaviour must be finite outside the samples marked missing"),
    ({"missing": np.zeros(8)}, "missing must be booleans of shape (8,)"),
    ({"time": _set(5, 0.35)}, "time[5] = 0.35 <= time[4] = 0.4: time must be strictly increasing"),
    ({"time": _set(0, np.nan)}, "time[0] = nan: time must be finite"),
    ({"dt": 0.0}, "dt must be in (0, inf], got 0.0"),
    ({"time": np.arange(7) * DT}, "must have one row per time bin, got lengths counts 8, behaviour 8, time 7"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(":")[0][:30] for _, m in BAD])
def test_each_bad_input_is_one_line_naming_array_index_and_rule(change, message):
    arrays, settings = _bad(**change)
    with pytest.raises(ConfigError) as err:
        SIMPL(iterations=0, **settings).fit(arrays["counts"], arrays["behaviour"], arrays["time"],
                                            missing=arrays.get("missing"))
    assert message in str(err.value) and "\n" not in str(err.value)


HELD_OUT = validation_mask(400, 3, 10, 0.1, seed=0)  # SIMPL's own mask for these shapes and seed 0


@pytest.mark.parametrize("counts,settings,message", [
    (np.zeros((400, 3), int), {}, "the validation entries hold no spike (counts has 0 in all)"),
    ((~HELD_OUT).astype(int), {}, f"the validation entries hold no spike (counts has {(~HELD_OUT).sum()} in all)"),
    (HELD_OUT.astype(int), {}, "the training entries hold no spike"),
    (np.ones((400, 3), int), {"val_fraction": 0.99}, "holds out 40; it must hold out at least one block"),
    (np.ones((40, 3), int), {}, "val_fraction 0.1 of the recording's 4 block(s) of val_block 1 s holds out 0"),
])
def test_a_split_without_spikes_on_either_side_is_one_line(counts, settings, message):
    """Both sides of the validation split need spikes (the M-step fits one, the metrics are per
    spike of each): a recording too short for one held-out block, or without spikes on a side, is
    refused in one line instead of dividing by zero."""
    T = len(counts)
    behaviour = np.c_[np.linspace(0, 1, T), np.linspace(1, 0, T)]
    with pytest.raises(ConfigError) as err:
        SIMPL(iterations=1, **settings).fit(counts, behaviour, np.arange(T) * DT)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_files_are_one_line_on_the_command_line(tmp_path, capsys):
    arrays, _ = _bad(counts=_set((3, 1), -1))
    np.savez(tmp_path / "neg.npz", **arrays)
    np.savez(tmp_path / "partial.npz", counts=arrays["counts"])
    (tmp_path / "notes.txt").write_text("x")
    for name, message in [("neg.npz", "counts[3, 1] = -1.0: counts must be non-negative"),
                          ("partial.npz", "has no behaviour, time"), ("notes.txt", "must end in .npz"),
                          ("absent.nwb", "does not exist"), ("", "'': not a file name"), (".", "is a directory")]:
        path = str(tmp_path / name) if name not in ("", ".") else name
        assert cli_main(["simpl", "fit", path, "--iterations", "0"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    np.savez(tmp_path / "ok.npz", **_bad()[0])
    assert cli_main(["simpl", "fit", str(tmp_path / "ok.npz"), "--truth"]) == 2
    assert "has no truth array" in capsys.readouterr().err
    assert cli_main(["simpl", "fit", str(tmp_path / "ok.npz"), "--val-fraction", "1.5"]) == 2
    assert "val_fraction must be in (0, 1)" in capsys.readouterr().err


def test_the_fit_never_writes_over_its_own_recording(tmp_path, capsys):
    """`--out` naming the recording being fitted, under its own name or through a link, is refused
    with --force too, and the recording is left as it was."""
    np.savez(tmp_path / "ok.npz", **_bad()[0])
    (tmp_path / "link.npz").symlink_to(tmp_path / "ok.npz")
    before = (tmp_path / "ok.npz").read_bytes()
    for out in ("ok.npz", "link.npz"):
        assert cli_main(["simpl", "fit", str(tmp_path / "ok.npz"), "--iterations", "0", "--out", str(tmp_path / out),
                         "--force"]) == 2
        err = capsys.readouterr().err
        assert "is the recording being fitted; refusing to write over it" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "ok.npz").read_bytes() == before


def test_nwb_gaps_and_tracking_losses(tmp_path):
    """Bins in a gap of the position series are dropped; NaN positions are marked missing."""
    from tcnet_plugins.simpl.files import read

    time = np.r_[np.arange(10), 30 + np.arange(10)] * DT
    behaviour = np.linspace(0, 1, 20)
    behaviour[4] = np.nan
    counts = np.arange(40).reshape(20, 2) % 3
    write_nwb(tmp_path / "gap.nwb", counts, behaviour, time)
    got = read(tmp_path / "gap.nwb")
    assert got["dt"] == pytest.approx(DT)
    np.testing.assert_allclose(got["time"], time, atol=1e-12)
    np.testing.assert_array_equal(got["counts"], counts)
    np.testing.assert_array_equal(got["missing"], np.isnan(behaviour))
    with pytest.raises(ConfigError, match="no SpatialSeries 'head'"):
        read(tmp_path / "gap.nwb", series="head")


@pytest.mark.parametrize("kind,settings,fraction", [
    ("linear_track", {}, 0.6),
    ("head_direction", {"space": "angular"}, 0.5),
    ("grid", {}, 0.8),
])
def test_each_latent_space_recovers_the_latent(kind, settings, fraction):
    """Small synthetic data of each kind: the latent error after a few iterations is at most
    `fraction` of the behaviour's (on the circle measured along the circle)."""
    d = simdata.generate(3, kind=kind, n_cells=40, duration=240.0)
    model = SIMPL(iterations=4, **settings).fit(d["counts"], d["behaviour"], d["time"], truth=d["truth"])
    err = [h["latent_error"] for h in model.history_]
    assert err[-1] < fraction * err[0], err


@pytest.mark.slow
@pytest.mark.parametrize("kind,settings,target", [
    ("linear_track", {}, 0.05),
    ("head_direction", {"space": "angular"}, np.deg2rad(5.0)),
])
def test_one_dimensional_benchmarks_reach_a_few_percent_of_the_behaviour_error(kind, settings, target):
    """The 1-D benchmarks at the grid benchmark's size (200 cells, 1 hour): behaviour 20 cm
    (track) or 20 degrees (head direction) off; after 10 iterations the latent is within `target`
    (5 cm, 5 degrees, on the circle along the circle), validation log-likelihood rising first."""
    d = simdata.generate(0, kind=kind)
    model = SIMPL(**settings).fit(d["counts"], d["behaviour"], d["time"], truth=d["truth"])
    err = [h["latent_error"] for h in model.history_]
    print(kind, "latent error per iteration:", np.round(err, 4))
    assert err[-1] < target and model.history_[1]["val_ll"] > model.history_[0]["val_ll"]
