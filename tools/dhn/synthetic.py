"""A small multi-label image dataset the project generates, for the offline demo and tests.

Each 32×32 image shows one or two of six "concepts" (a shape in its own colour) at random
places and sizes on a noisy background; its label is the multi-hot vector of the concepts
shown. Two images are similar when they share a concept — the NUS-WIDE/Flickr rule — so the
whole multi-label path (list file → LMDB → pairwise loss → MAP) is exercised, and a small
CNN can learn it from scratch in minutes.

The images are written as PNG files with a list file ``path l_1 … l_6``: the same input
format as NUS-WIDE and MIRFlickr, converted by the same code.
"""
import os

import cv2
import numpy as np

from .atomic import write_atomic

CONCEPTS = ("red disc", "green square", "blue triangle", "yellow cross", "magenta ring", "cyan bar")
COLORS_BGR = [(40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 220, 230), (220, 40, 220), (220, 220, 40)]
SIZE = 32


def draw_concept(img, concept, rng):
    r = int(rng.integers(5, 8))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
    color = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in COLORS_BGR[concept])
    if concept == 0:
        cv2.circle(img, (cx, cy), r, color, -1)
    elif concept == 1:
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    elif concept == 2:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color)
    elif concept == 3:
        cv2.line(img, (cx - r, cy), (cx + r, cy), color, 2)
        cv2.line(img, (cx, cy - r), (cx, cy + r), color, 2)
    elif concept == 4:
        cv2.circle(img, (cx, cy), r, color, 2)
    else:
        cv2.rectangle(img, (cx - r, cy - 2), (cx + r, cy + 2), color, -1)


def make_image(labels, rng):
    base = int(rng.integers(60, 160))
    img = np.clip(rng.normal(base, 20, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    for concept in np.flatnonzero(labels):
        draw_concept(img, concept, rng)
    return img


def random_labels(rng):
    labels = np.zeros(len(CONCEPTS), np.uint8)
    labels[rng.choice(len(CONCEPTS), size=int(rng.integers(1, 3)), replace=False)] = 1
    return labels


def write_dataset(root, n_images, seed=0):
    """Write ``root/images/%05d.png`` and ``root/list.txt``; returns the list file's path.

    Deterministic for a seed; a finished dataset (list file present) is left as it is.
    """
    list_path = os.path.join(root, "list.txt")
    if os.path.exists(list_path) and sum(1 for _ in open(list_path)) == n_images:
        return list_path
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    lines = []
    for i in range(n_images):
        labels = random_labels(rng)
        rel = "images/%05d.png" % i
        cv2.imwrite(os.path.join(root, rel), make_image(labels, rng))
        lines.append(rel + " " + " ".join(str(v) for v in labels))
    write_atomic(list_path, "\n".join(lines) + "\n")       # the list appears only when all images exist
    return list_path
