r"""Live demo: a classifier run on a live stream, shown in a local web page.

  python -m imujax.online.live --model=RUN_WORKDIR_OR_ARTIFACT --source=SOURCE \
      [--http_port=8765] [--ema=0.9 --hysteresis=0.1] [--gap_policy=hold]

Serves http://127.0.0.1:PORT/ (loopback only): the current class and a
scrolling plot of the class probabilities, updated live (the page polls
`/state` every 100 ms; no external scripts). On exit (Ctrl-C, `--duration`,
or the end of a replay plus `--linger`) it prints latency statistics: per
sample, from its arrival to its probabilities on the host.

Sources (`--source`):

* `replay:PATH[,speed=N]`: a recording replayed in real time (or N times
  faster); PATH is an `.npz` with `t` <float64>[T] seconds, `x` [T, C] and
  `channels` [C] names, an `.mvnx` file (channels `<placement>_{acc,gyr}_*`
  as the MVNX builders name them), or a TFDS dataset name (e.g.
  `seglearn_watch`): its recordings of the run's test split, back to back.
* `udp:PORT`: UDP datagrams on 127.0.0.1:PORT in the format below.
* `mvn:PORT[,map=TO:FROM;...][,character=ID]`: the Xsens MVN real-time
  network stream (see `imujax.online.mvn_stream`; types 22 and 23 give the
  channels); `map=wrist:right_fore_arm` feeds the tracker on the right forearm
  to a model trained on `wrist_*` channels.

UDP datagram format (version 1; big-endian, one datagram per sample):

  header datagram (optional, recommended; send it first and now and then):
    4s  b"IMJH"
    ..  UTF-8 JSON object: {"channels": [names, in the order of the values]}
  sample datagram:
    4s  b"IMJD"
    u32 sequence number (+1 per sample; a jump counts as lost datagrams)
    f64 timestamp, seconds (any origin; irregular is fine: resampled online)
    u16 C, the number of values
    C x f32 values, in the units the model was trained on; NaN = missing

Without a header the values are taken to be the model's channels in the
model's order (only their number is checked); with one, names and order are
checked against the run and a mismatch stops the demo naming the missing or
extra channels. `imujax.online.live.sources.udp_sender` writes this format.
"""
