"""Openers that misbehave like a broken decoder, for the source isolation tests (run in the child)."""

from __future__ import annotations

import os
import time

import cv2


class _AbortAfter:
    def __init__(self, url: str, frames: int) -> None:
        self.cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        self.left = frames

    def read(self):
        if self.left <= 0:
            os.abort()  # what OpenCV has been seen to do on a malformed AVI
        self.left -= 1
        return self.cap.read()

    def get(self, prop: int) -> float:
        return self.cap.get(prop)


def abort_after_two(url: str) -> _AbortAfter:
    return _AbortAfter(url, 2)


def abort_after_one(url: str) -> _AbortAfter:
    return _AbortAfter(url, 1)


class _Hang:
    def read(self):
        time.sleep(3600)
        return False, None

    def get(self, prop: int) -> float:
        return -1.0


def hang(url: str) -> _Hang:
    return _Hang()


def opencv_mjpeg(url: str):
    """OpenCV's own AVI/MJPEG reader instead of FFmpeg (stricter: raises on bad chunks)."""
    cap = cv2.VideoCapture(url, cv2.CAP_OPENCV_MJPEG)
    if not cap.isOpened():
        raise RuntimeError(f"cannot open {url}")
    return cap
