"""Named seeded streams: stable across processes, independent between names."""

import os
import subprocess
import sys

import numpy as np

from biotalk.rng import name_key, stream

DRAWS = "from biotalk.rng import stream; print(stream(7, 'frag', 'b0001|1.1.1.1', 3).integers(0, 2**62, 4).tolist())"


def test_streams_are_stable_across_processes():
    here = stream(7, "frag", "b0001|1.1.1.1", 3).integers(0, 2**62, 4).tolist()
    for hash_seed in ("0", "12345"):  # Python's str hash() is salted per process; the streams must not be
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", DRAWS], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(here)


def test_integer_keys_are_the_numpy_seed_path():
    # The builder's streams keep their draws: stream(seed) is default_rng(seed), keys extend the seed list.
    assert stream(3).random(5).tolist() == np.random.default_rng(3).random(5).tolist()
    assert stream(3, 2).random(5).tolist() == np.random.default_rng([3, 2]).random(5).tolist()
    key = name_key("r1")
    assert stream(0, 5, "r1").random(3).tolist() == np.random.default_rng([0, 5, key]).random(3).tolist()
    assert key == 0x83DD8A0C5B69BD30  # blake2b-64 of the name: fixed forever, unlike hash()


def test_streams_with_different_names_are_independent():
    draws = {
        keys: stream(0, *keys).random(20_000)
        for keys in [(), ("a",), ("b",), ("a", "b"), ("b", "a"), (1,), (1, 2), (2, 1)]
    }
    names = list(draws)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(draws[a], draws[b]), (a, b)
            assert abs(np.corrcoef(draws[a], draws[b])[0, 1]) < 0.05, (a, b)
    assert stream(1, "a").random() != stream(0, "a").random()  # the seed counts too
    assert stream(0, "a").random(3).tolist() == stream(0, "a").random(3).tolist()  # and nothing else
