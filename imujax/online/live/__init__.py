r"""Live demo: a classifier run on live streams, shown in a local web page.

  python -m imujax.online.live --model=RUN_WORKDIR_OR_ARTIFACT --source=SOURCE \
      [--source=SOURCE2 ...] [--http_port=8765] [--ema=0.9 --hysteresis=0.1] \
      [--gap_policy=hold] [--record=SESSION.npz]

Serves http://127.0.0.1:PORT/ (loopback by default; `--http_host` to change
it): one page per stream (`/s/<i>/`; `/` is the page of a single stream, or
an overview of several), updated live (it polls `state` every 100 ms; no
external assets). The page shows:

* the predicted class, and beside it the true one when the replay has labels:
  a ribbon of true vs predicted labels over time, the session's running
  accuracy and macro-F1, and the detection delay of each change of activity;
* the class probabilities and the input channels (the frames the model saw,
  after resampling), grouped per placement and sensor with their units, on a
  time axis in seconds, with gaps, repairs, resets and clock jumps marked;
  pause / resume and a window length;
* stream health: input rate vs model rate, samples and frames, queue depth,
  latency per sample from its arrival to its probabilities (median, p99),
  resets, gaps, dropped / malformed packets by kind, server CPU;
* for a regression or events run (no classifier): each target's trace in
  its unit and a marker at each event the causal decoder finds (at most its
  delay_ms after the peak), instead of the probabilities and labels;
* the model card: the run or artifact, dataset, channels, rate, cell,
  pre-training objective, and the test scores of its summary.json.

On exit (Ctrl-C, SIGTERM, `--duration`, or the end of every replay plus
`--linger`) it prints each stream's counts, latency and scores, and with
`--record` saves each session (`imujax.online.live.record`) so that
`--source=replay:FILE` replays it exactly.

Sources (`--source`, repeatable):

* `replay:PATH[,speed=N]`: a recording replayed in real time (N times
  faster; 0 = as fast as the model goes); PATH is an `.npz` with `t`
  <float64>[T] seconds, `x` [T, C] and `channels` [C] names (optional `y`
  [T] label indices into `classes` [K]: the truth), a `--record` file (its
  samples released at their recorded arrival times), an `.mvnx` file
  (channels `<placement>_{acc,gyr}_*` as the MVNX builders name them), or a
  TFDS dataset name (e.g. `seglearn_watch`): its recordings of the run's test
  split, back to back, with their labels as the truth.
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
model's order (only their number is checked); with one, the model's
channels are picked by name. `imujax.online.live.sources.udp_sender` writes
this format.

Bad input never stops a stream; it is counted by kind on the page: a
malformed datagram or header, a sample with the wrong number of values, lost
datagrams, an MVN datagram that is short, truncated, late, repeated, with a
bad or repeated segment ID, a sample whose channels do not cover the model's
(the mismatch is named on the page and on stderr), a full queue. A timestamp
that jumps forward or back by more than `--max_gap_s` restarts the stream
there (state reset, marked on the page) rather than freezing it. A replay
whose channels do not cover the model's is refused at start.
"""
