package live

// SetReplayWaitsHook makes h call f whenever a replay starts waiting for
// room. Call it before h is used.
func SetReplayWaitsHook(h *Hub, f func(*Subscription)) { h.testReplayWaits = f }
