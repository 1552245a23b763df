"""insole_pin2gpi: pressure insoles with derived gait phases (see README)."""
