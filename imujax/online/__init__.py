"""Online: the trained params run one frame at a time, as in deployment.

Owns the pure streaming step, the online resampler, gap policies, the
streamer and the stream pool (many streams, one device), the exported
artifact, the live page with its network sources (UDP, Xsens MVN) and
streaming evaluation. May import everything below experiments; the training
loop only for the run record it reads.
"""
