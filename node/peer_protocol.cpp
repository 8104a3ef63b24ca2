// Filled by the peer-protocol change.
