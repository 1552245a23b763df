"""MVN network protocol: byte layout, round trips, loopback replay of MVNX."""

import socket
import struct
import threading

import numpy as np
import pytest

from imujax.online import mvn_stream
from imujax.datasets import mvnx
import mvnx_fixtures


def test_header_layout_follows_the_specification():
  items = np.zeros(2, mvn_stream.ITEM_TYPES["23"])
  items["segment_id"] = [10, 11]
  items["free_acceleration"] = [[1., 2., 3.], [4., 5., 6.]]
  (gram,) = mvn_stream.encode_items("23", 7, 1234, items, character_id=1)
  assert len(gram) == 24 + 2 * 44
  assert gram[:6] == b"MXTP23"
  assert struct.unpack(">I", gram[6:10]) == (7,)      # sample counter
  assert gram[10] == 0x80                              # only datagram
  assert gram[11] == 2                                 # items
  assert struct.unpack(">I", gram[12:16]) == (1234,)  # time code, ms
  assert gram[16] == 1 and gram[17] == 23              # character, segments
  assert struct.unpack(">H", gram[22:24]) == (88,)    # payload size
  assert struct.unpack(">i", gram[24:28]) == (10,)    # big-endian segment id
  assert struct.unpack(">3f", gram[44:56]) == (1., 2., 3.)
  d = mvn_stream.decode(gram)
  assert d.header.message_type == "23" and d.header.last
  np.testing.assert_array_equal(d.items["free_acceleration"],
                                items["free_acceleration"])


def test_large_samples_split_over_datagrams():
  items = np.zeros(100, mvn_stream.ITEM_TYPES["21"])
  items["segment_id"] = np.arange(100)
  grams = mvn_stream.encode_items("21", 3, 0, items)
  assert len(grams) > 1 and all(len(g) <= 1500 - 28 for g in grams)
  heads = [mvn_stream.decode(g).header for g in grams]
  assert [h.datagram_index for h in heads] == list(range(len(grams)))
  assert [h.last for h in heads] == [False] * (len(grams) - 1) + [True]
  got = np.concatenate([mvn_stream.decode(g).items["segment_id"]
                        for g in grams])
  np.testing.assert_array_equal(got, np.arange(100))


def test_decode_errors_and_undecoded_types():
  with pytest.raises(mvn_stream.MvnProtocolError, match="MXTP"):
    mvn_stream.decode(b"XXXX01" + bytes(18))
  (gram,) = mvn_stream.encode_items("24", 0, 0, np.zeros(1, mvn_stream.
                                                          ITEM_TYPES["24"]))
  with pytest.raises(mvn_stream.MvnProtocolError, match="payload"):
    mvn_stream.decode(gram[:-4])
  meta = mvn_stream.encode(mvn_stream.Header("12", 0, 0, True, 1, 0),
                           b"name:Actor 1\nxmid:123\n")
  d = mvn_stream.decode(meta)
  assert d.items is None
  assert mvn_stream.decode_meta(d.payload) == {"name": "Actor 1",
                                               "xmid": "123"}


def _receive(port_sock, mvnx_path, **kw):
  asm = mvn_stream.MvnAssembler()
  samples = []
  sender = threading.Thread(target=mvn_stream.send_mvnx,
                            args=(mvnx_path, port_sock.getsockname()[1]),
                            kwargs={"speed": 0, **kw})
  sender.start()
  port_sock.settimeout(1.0)
  try:
    while True:
      samples += asm.feed(port_sock.recv(65536))
  except socket.timeout:
    pass
  sender.join()
  return asm, samples


@pytest.fixture
def udp_socket():
  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
  s.bind(("127.0.0.1", 0))
  yield s
  s.close()


def _check_against_file(rec, samples):
  assert len(samples) == len(rec.index)
  i = len(samples) // 2
  s = samples[i]
  assert s.t == pytest.approx(round(rec.timestamps_s[i] * 1e3) / 1e3)
  f = rec.fields
  for j, label in enumerate(rec.sensor_labels):
    pl = mvnx.sensor_placement(label)
    k = s.channels.index(f"{pl}_acc_x")
    if "sensorFreeAcceleration" in f:
      np.testing.assert_allclose(s.values[k:k + 3],
                                 f["sensorFreeAcceleration"][i, j], rtol=1e-6)
    np.testing.assert_allclose(s.values[k + 3:k + 7],
                               f["sensorOrientation"][i, j], rtol=1e-6)
    g = s.channels.index(f"{pl}_gyr_x")
    seg = rec.segment_labels.index(label)
    np.testing.assert_allclose(s.values[g:g + 3],
                               f["angularVelocity"][i, seg], rtol=1e-6)


def test_loopback_replay_of_a_generated_mvnx(tmp_path, udp_socket):
  path = tmp_path / "take.mvnx"
  mvnx_fixtures.write_mvnx(path, mvnx_fixtures.random_frames(30, version=4),
                           version=4, rate=60.)
  rec = mvnx.read(path, "all")
  asm, samples = _receive(udp_socket, str(path))
  assert asm.counts["samples"] == 30 and asm.dropped["late"] == 0
  _check_against_file(rec, samples)


@pytest.mark.slow
def test_loopback_replay_of_a_real_mvnx(shared_data, udp_socket):
  files = sorted((shared_data / "mvnx_samples").rglob("*.mvnx"))
  if not files:
    pytest.skip(f"no .mvnx file under {shared_data / 'mvnx_samples'}")
  path = min(files, key=lambda p: p.stat().st_size)
  rec = mvnx.read(path, "all", allow_truncated=True)
  n = min(len(rec.index), 200)
  asm, samples = _receive(udp_socket, str(path), frames=n)
  rec = rec._replace(index=rec.index[:n], fields={
      k: v[:n] for k, v in rec.fields.items()})
  if "angularVelocity" not in rec.fields or not rec.sensor_labels:
    pytest.skip(f"{path.name} has no segment angular velocity or sensors")
  _check_against_file(rec, samples)


# ------------------------------------------------ what UDP and senders break
def _sample_grams(counter, segments=(10, 11), *, types=("22", "23"),
                  tc=None, character=0):
  """One sample's datagrams: one per type, items for `segments`."""
  grams = {}
  for mt in types:
    items = np.zeros(len(segments), mvn_stream.ITEM_TYPES[mt])
    items["segment_id"] = segments
    grams[mt] = mvn_stream.encode_items(
        mt, counter, 10 * counter if tc is None else tc, items,
        character_id=character)[0]
  return grams


def _feed(asm, grams):
  out = []
  for g in grams:
    out += asm.feed(g)
  return out


def test_assembler_counts_and_drops_bad_datagrams_without_raising():
  asm = mvn_stream.MvnAssembler()
  good = _sample_grams(0)
  assert len(_feed(asm, [good["22"], good["23"]])) == 1
  junk = [b"", b"MXTP23", b"XXXX01" + bytes(18), good["23"][:-4],
          mvn_stream.encode(mvn_stream.Header("23", 1, 0, True, 3, 0),
                            bytes(44))]
  assert _feed(asm, junk) == []
  assert {k: asm.dropped[k] for k in mvn_stream.PROTOCOL_ERRORS} == {
      "short_datagram": 2, "not_mxtp": 1, "payload_size": 1, "item_size": 1}
  # A straggler of sample 0 after it was finished: late, not a new sample.
  assert _feed(asm, [good["22"]]) == [] and asm.dropped["late"] == 1
  # Segment -1 and 99: those items dropped, the sample kept.
  s = _sample_grams(1, segments=(10, -1, 99))
  (sample,) = _feed(asm, [s["22"], s["23"]])
  assert asm.dropped["bad_segment_id"] == 4
  assert all("segment" not in c for c in sample.channels)
  assert sample.channels[0] == "right_fore_arm_acc_x"
  # A segment twice in one type: the whole sample dropped.
  s = _sample_grams(2, segments=(10, 10))
  assert _feed(asm, [s["22"], s["23"]]) == []
  assert asm.dropped["duplicate_segment"] == 1
  # A datagram received twice (the 23 is kept waiting for its 22).
  s = _sample_grams(3)
  assert _feed(asm, [s["23"], s["23"]]) == []
  assert asm.dropped["duplicate_datagram"] == 1
  (sample,) = _feed(asm, [s["22"]])
  assert sample.sample_counter == 3
  # An empty type-23 datagram: the sample has no tracker channels.
  s = _sample_grams(4, segments=(), types=("23",))
  g = _sample_grams(4, types=("22",))
  (sample,) = _feed(asm, [s["23"], g["22"]])
  assert sample.channels == [f"{p}_gyr_{a}" for p in ("right_fore_arm",
                                                       "right_hand")
                             for a in "xyz"]
  # A lost type-22 datagram: sample 5 completes incomplete on sample 6.
  s5, s6 = _sample_grams(5), _sample_grams(6)
  assert _feed(asm, [s5["23"]]) == []
  first, = _feed(asm, [s6["22"]])
  assert first.sample_counter == 5 and asm.counts["incomplete_samples"] == 1
  assert all("gyr" not in c for c in first.channels)
  (second,) = _feed(asm, [s6["23"]])
  assert second.sample_counter == 6
  # A sender that restarts its counter is followed, not dropped as late.
  assert len(_feed(asm, list(_sample_grams(5000).values()))) == 1
  (again,) = _feed(asm, list(_sample_grams(0, tc=0).values()))
  assert again.sample_counter == 0 and asm.counts["counter_restarts"] == 1
  assert asm.dropped["late"] == 1
  # Another character: counted, ignored.
  assert _feed(asm, list(_sample_grams(9, character=2).values())) == []
  assert asm.counts["other_character"] == 2
