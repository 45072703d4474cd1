"""What a device is: GB/T 28181 ID codec, device kinds, camera optics, coverage sectors, fleet."""
