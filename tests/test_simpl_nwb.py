"""SIMPL reads a lab's NWB file as the file means it (issue 28): each series' conversion, offset and
unit to SI, the space from the series' type and unit, angles resampled along the circle, no bin
lost to an estimated dt, and a report of what was read and dropped. Files are written here with
pynwb, as independent code would write them; each is compared with the same data as SI arrays."""
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from tcnet import ConfigError
from tcnet.cli import main
from tcnet_plugins.simpl import SIMPL
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.files import read
from tcnet_plugins.simpl.space import wrap

pytest.importorskip("pynwb")
DT = 0.1


def write_nwb(path, spikes, data, *, compass=False, unit="m", conversion=1.0, offset=0.0, timestamps=None,
              rate=None, starting_time=0.0):
    """An NWB file with these spike times per unit and one SpatialSeries (in a Position, or a
    CompassDirection), sampled at `timestamps` or at `rate` Hz from `starting_time`."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import CompassDirection, Position, SpatialSeries

    nwb = NWBFile(session_description="issue 28", identifier="simpl-nwb",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for st in spikes:
        nwb.add_unit(spike_times=np.sort(st))
    timing = dict(timestamps=timestamps) if rate is None else dict(rate=float(rate), starting_time=starting_time)
    series = SpatialSeries(name="heading" if compass else "position", data=data, unit=unit, conversion=conversion,
                           offset=offset, reference_frame="arena", **timing)
    container = CompassDirection(spatial_series=series) if compass else Position(spatial_series=series)
    nwb.create_processing_module(name="behavior", description="tracking").add(container)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def spike_times(counts, time, seed=0):
    """Each bin's spikes at random times inside the bin (away from its edges)."""
    rng = np.random.default_rng(seed)
    return [np.repeat(time, c) + rng.uniform(0.05, 0.95, c.sum()) * DT for c in counts.T]


@pytest.fixture(scope="module")
def track():
    return simdata.generate(4, kind="linear_track", n_cells=20, duration=120.0)


@pytest.fixture(scope="module")
def heading():
    return simdata.generate(4, kind="head_direction", n_cells=20, duration=120.0)


def same_fit(path, d, **settings):
    """The fit of the file equals the fit of the SI arrays, to the fit's determinism."""
    arrays = read(path, dt=DT)
    np.testing.assert_array_equal(arrays["counts"], d["counts"])
    np.testing.assert_allclose(arrays["time"], d["time"], rtol=0, atol=1e-9)
    space = arrays["space"]
    ours = SIMPL(iterations=2, dt=DT, space=space, **settings).fit(arrays["counts"], arrays["behaviour"],
                                                                   arrays["time"])
    si = SIMPL(iterations=2, dt=DT, space=simdata.space_of({"kind": d["kind"]}), **settings)
    si.fit(d["counts"], d["behaviour"], d["time"])
    np.testing.assert_allclose(wrap(ours.latent_ - si.latent_), 0, atol=1e-9)
    np.testing.assert_allclose(ours.fields_, si.fields_, rtol=1e-7)
    return arrays


def track_data(d):
    return {**d, "kind": "linear_track"}


@pytest.mark.parametrize("stored, unit, conversion, offset", [
    (lambda x: 100 * x, "m", 0.01, 0.0),  # centimetres, the NWB way: conversion to the unit
    (lambda x: 100 * x, "cm", 1.0, 0.0),  # centimetres as the unit
    (lambda x: 1000 * (x - 0.5), "mm", 1.0, 500.0),  # millimetres about the middle, an offset back
])
def test_a_position_in_other_units_gives_the_fit_of_metres(tmp_path, track, stored, unit, conversion, offset):
    d = track
    write_nwb(tmp_path / "rec.nwb", spike_times(d["counts"], d["time"]), stored(d["behaviour"][:, 0]),
              unit=unit, conversion=conversion, offset=offset, timestamps=d["time"])
    arrays = same_fit(tmp_path / "rec.nwb", track_data(d))
    np.testing.assert_allclose(arrays["behaviour"], d["behaviour"], rtol=0, atol=1e-12)
    assert arrays["space"] == "linear" and arrays["report"]["si_unit"] == "m"


def test_a_compass_in_degrees_is_an_angle_in_radians(tmp_path, heading):
    d = heading
    write_nwb(tmp_path / "hd.nwb", spike_times(d["counts"], d["time"]), np.rad2deg(d["behaviour"][:, 0]),
              compass=True, unit="degrees", timestamps=d["time"])
    arrays = same_fit(tmp_path / "hd.nwb", {**d, "kind": "head_direction"})
    assert arrays["space"] == "angular"
    np.testing.assert_allclose(wrap(arrays["behaviour"] - d["behaviour"]), 0, atol=1e-12)


def test_a_25_hz_compass_binned_at_a_tenth_of_a_second_is_resampled_along_the_circle(tmp_path):
    """Heading at 25 Hz, piecewise linear in time between knots every 0.2 s (every fifth sample),
    turning several times round: linear interpolation of the unwrapped heading is exact, so the
    bins at 0.1 s must carry the heading itself, wrapped; across 0/2 pi a plain interpolation is
    up to 180 degrees off."""
    rng = np.random.default_rng(5)
    knots = np.arange(0, 600.01, 0.2)
    unwrapped = np.cumsum(np.r_[0, rng.normal(0, 0.6, knots.size - 1)])
    stamps = np.arange(15001) / 25.0
    heading = np.mod(np.interp(stamps, knots, unwrapped), 2 * np.pi)
    write_nwb(tmp_path / "hd25.nwb", [np.sort(rng.uniform(0, 600, 3000))], heading, compass=True, unit="radians",
              rate=25.0)
    got = read(tmp_path / "hd25.nwb", dt=DT)
    assert got["report"]["bins"] == 6001 == got["time"].size  # 0 .. 600 s, every 0.1 s
    truth = np.mod(np.interp(got["time"], knots, unwrapped), 2 * np.pi)
    assert np.abs(wrap(got["behaviour"][:, 0] - truth)).max() < 1e-9
    crossing = np.abs(np.diff(heading)) > np.pi  # the samples a plain interpolation would cross 0/2 pi between
    assert crossing.sum() > 100


@pytest.mark.parametrize("n, start, how", [(18000, 0.0, "rate"), (12000, 0.5, "timestamps"),
                                           (18000, 86400.3, "timestamps")])
def test_no_bin_is_lost_to_an_estimated_dt(tmp_path, n, start, how):
    """n samples every 0.1 s (a lab clock may start a day in): n bins, the last one's spikes counted.
    Before, the median step came out a hair above 0.1 s and the last bin was dropped."""
    time = start + np.arange(n) * DT
    behaviour = 0.5 + 0.4 * np.sin(np.arange(n) / 300.0)
    spikes = [time[::7] + 0.05, time[-1:] + 0.05]  # the second cell fires in the last bin only
    timing = dict(rate=1 / DT, starting_time=start) if how == "rate" else dict(timestamps=time)
    write_nwb(tmp_path / "long.nwb", spikes, behaviour, **timing)
    got = read(tmp_path / "long.nwb")
    assert got["time"].size == n and got["report"]["bins"] == n
    assert got["counts"][-1, 1] == 1 and got["counts"].sum() == len(spikes[0]) + 1
    np.testing.assert_allclose(got["time"], time, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["behaviour"][:, 0], behaviour, rtol=0, atol=1e-9)


@pytest.mark.parametrize("unit, compass, space, message", [
    ("furlongs", False, None, "has unit 'furlongs'; SIMPL reads lengths in m, cm or mm and angles in radians or degrees"),
    ("m", False, "angular", "space 'angular' needs an angle, but SpatialSeries 'position'.*leave space out"),
    ("m", True, None, "needs an angle, but CompassDirection SpatialSeries 'heading'.*give space 'linear'"),
])
def test_a_unit_that_cannot_be_read_is_one_line(tmp_path, unit, compass, space, message):
    """An unknown unit, and a length fitted as an angle (asked for, or a compass in metres)."""
    write_nwb(tmp_path / "bad.nwb", [np.array([0.15])], np.linspace(0, 1, 20), unit=unit, compass=compass,
              timestamps=np.arange(20) * DT)
    with pytest.raises(ConfigError, match=message):
        read(tmp_path / "bad.nwb", space=space)


def test_the_space_comes_from_the_series_unless_overridden(tmp_path):
    write_nwb(tmp_path / "a.nwb", [np.array([0.15])], np.linspace(0, 6, 20), compass=True, unit="radians",
              timestamps=np.arange(20) * DT)
    assert read(tmp_path / "a.nwb")["space"] == "angular"
    assert read(tmp_path / "a.nwb", space="linear")["space"] == "linear"
    write_nwb(tmp_path / "b.nwb", [np.array([0.15])], np.linspace(0, 6, 20), unit="radians",
              timestamps=np.arange(20) * DT)
    assert read(tmp_path / "b.nwb")["space"] == "angular"  # an angle in a Position is still an angle


@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """A 60 s track at 10 Hz from t = 10 s with a tracking gap [30, 35) s; spikes placed so that the
    dropped ones are known: 3 before the series, 2 after it, 4 inside the gap, 1 in the last bin."""
    home = tmp_path_factory.mktemp("nwb_report")
    d = simdata.generate(6, kind="linear_track", n_cells=6, duration=60.0)
    time = 10.0 + d["time"]
    keep = (time < 30.0) | (time >= 35.0)
    spikes = spike_times(d["counts"][keep], time[keep])
    extra = [np.array([1.0, 5.0, 9.5]), np.array([70.5, 80.0]), np.array([31.0, 32.0, 33.0, 34.0]),
             np.array([time[-1] + 0.05])]
    spikes[0] = np.concatenate([spikes[0], *extra])
    write_nwb(home / "gap.nwb", spikes, 100 * d["behaviour"][keep, 0], unit="m", conversion=0.01,
              timestamps=time[keep])
    return home / "gap.nwb", int(d["counts"][keep].sum()), int(keep.sum())


def test_the_report_counts_what_was_read_and_dropped(gappy):
    path, inside, samples = gappy
    r = read(path)["report"]
    assert (r["unit"], r["conversion"], r["si_unit"], r["space"], r["samples"]) == ("m", 0.01, "m", "linear", samples)
    assert r["bins"] == samples and r["dropped_bins"] == {"in gaps of the series": 600 - samples}
    assert r["dropped_spikes"] == {"before the first bin": 3, "after the last bin": 2, "in gaps of the series": 4}
    assert r["spikes"] == inside + 10 and r["spikes_binned"] == inside + 1
    assert r["cells"] == 6 and r["span"] == pytest.approx([10.0, 70.0])


def test_dry_run_prints_the_report_and_stops(gappy, tmp_path, capsys):
    path, inside, samples = gappy
    store = tmp_path / "runs.h5"
    assert main(["simpl", "fit", str(path), "--dry-run", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    for text in ["NWB Position series 'position'", f"{samples} samples", "unit 'm' x conversion 0.01 -> m",
                 "space linear", f"{samples} bins of dt 0.1 s (the series' median step) over [10, 70] s",
                 f"6 cells, {inside + 10} spikes", "3 spikes before the first bin", "2 spikes after the last bin",
                 "4 spikes in gaps of the series", f"{600 - samples} bins in gaps of the series",
                 f"({inside + 1} spikes binned)", "checks passed: space linear", "dry run: nothing fitted"]:
        assert text in out, (text, out)
    assert not store.exists()


def test_the_fit_prints_the_report_and_stores_it_with_the_run(gappy, tmp_path, capsys):
    import json

    path, inside, _ = gappy
    store = tmp_path / "runs.h5"
    assert main(["simpl", "fit", str(path), "--iterations", "1", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "4 spikes in gaps of the series" in out and "random-walk speed" in out and " m/s (measured" in out
    with h5py.File(store, "r") as f:
        (run,) = f["runs"].values()
        notes = json.loads(run.attrs["notes"])
    assert notes["source"] == json.loads(json.dumps(read(path)["report"]))


def test_a_grid_too_large_for_the_unit_names_the_series_unit(tmp_path, track, capsys):
    """A 2 m track in hundredths of a millimetre written as metres (no conversion): the grid's size
    check (2e4 m at 2 cm) refuses it in one line naming the series' unit and conversion."""
    d = track
    write_nwb(tmp_path / "um.nwb", spike_times(d["counts"], d["time"]), 1e4 * d["behaviour"][:, 0],
              unit="m", timestamps=d["time"])
    assert main(["simpl", "fit", str(tmp_path / "um.nwb"), "--iterations", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "points (simpl.space.GRID_POINTS); is behaviour in metres?" in err
    assert "[behaviour read from NWB series 'position': unit 'm', conversion 1, offset 0 -> m, space linear]" in err


def test_array_files_report_their_bins_and_spikes(tmp_path, track, capsys):
    d = track
    np.savez(tmp_path / "rec.npz", counts=d["counts"], behaviour=d["behaviour"], time=d["time"])
    assert main(["simpl", "fit", str(tmp_path / "rec.npz"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(d['time'])} bins of dt 0.1 s (the median step of time)" in out
    assert f"20 cells, {d['counts'].sum()} spikes" in out and "dry run" in out
