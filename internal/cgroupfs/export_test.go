package cgroupfs

// NewUnwatchedWalker returns a Walker without inotify watches, which lists every directory
// at every walk (what a Walker does where inotify is missing).
func NewUnwatchedWalker() *Walker { return &Walker{noWatch: true} }
