"""Online: the trained params run one frame at a time, as in deployment.

One module per concern: `step` (the pure step over params and a
`models.ModelConfig`), `resampler` (online resampling, gap policies),
`streamer` (one stream: channel check, resampling, model, smoothing),
`model` (a workdir loaded for inference; the jitted `Model`), `numpy_model`
(the same maths in NumPy), `stream_pool` (many streams, one device),
`export` (the self-contained artifact), `live` (the live page and its network
sources, `mvn_stream` for Xsens MVN) and `stream` (the streaming-evaluation
command). The model's shape is read from the run record
(`imujax.training.run_record`) or from an artifact's meta.json, never from
the params. May import everything below experiments; the training package
only for the run record and the checkpoints it reads.
"""
