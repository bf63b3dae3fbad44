"""Pure: model into text (netstat, BSD, ss, JSON, CSV). Golden-tested."""
