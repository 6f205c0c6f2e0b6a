"""The one generator of every prototxt (pycaffe NetSpec): train nets, deploy nets, solvers.

python -m dhn.netgen            rewrite prototxt/ (the committed files are exactly this output)
python -m dhn.netgen --check    exit 1 if prototxt/ differs from what the generator writes
python -m dhn.netgen --dataset cifar10 --bits 12 --variant dhn-q
                                any other combination, into prototxt/extra/<dataset>/ (git-ignored)

prototxt/<dataset>/ holds one canonical set per dataset, as Caffe's examples do: the paper's
headline DHN at 48 bits (the demo: 16) — train net, solver, deploy net. Solvers snapshot into
their own folder, so `caffe train -solver` runs from a fresh clone (after `make data`).

Backbones:
- ``alexnet``: BVLC AlexNet conv1–fc7 with BVLC's layer names and shapes, so
  ``caffe train -weights bvlc_alexnet.caffemodel`` copies conv1–fc7 (fc8 is absent and
  ignored); input 256×256 LMDB, 227 crop, BGR mean 104/117/123.
- ``tiny``: a small CNN trained from scratch, for the offline demo (32×32 images, 28 crop).
- any other Caffe deploy net, ``foreign_backbone("deploy.prototxt:layer")``: cut after that
  layer, with its own layer names so that ``-weights its.caffemodel`` copies what it keeps.
All feed ``fch`` (InnerProduct K, gaussian std 0.01, lr_mult 10/20) → TanH → blob ``code``.

λ (``lambda_``) is the paper's: its objective *sums* the pairwise term over pairs and the
quantization term over images and bits. The layers *average* (pairs over B², quantization over
B·K), so after dividing the whole objective by B² the quantization layer's loss_weight is
λ·K/B. The authors' released code (loss weight 0.2 on a gradient divided by B only,
docs/FIDELITY.md) corresponds to λ = 0.2·B = 12.8 at B = 64: our default λ = 10 is the
nearest point of the paper's ×10 grid.
"""
import argparse
import difflib
import os
import sys
from dataclasses import dataclass, replace

from caffe import layers as L, params as P, NetSpec  # noqa: N812
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from .atomic import write_atomic

BATCH = 64
SEED = 1234              # the one default seed: solver (random_seed), data order and augmentation
DEFAULT_LR = 2e-5        # the authors' solver (docs/FIDELITY.md)
DEFAULT_LAMBDA = 10.0    # see the module docstring
# The head on a pretrained net's features (BatchNorm → fch: the frozen-feature mode, and the
# default for --backbone) has its own defaults, chosen on a validation split carved from the
# training images, queries and database both held out from training (the runs:
# docs/lab/2026-12-06-head-defaults.md). With the paper's α = 1 the pair loss is met by small
# codes that sign() scrambles; θ = (10/K)⟨z_i, z_j⟩ (thuml/HashNet's sigmoid_param) keeps θ's
# range the same at every K and needs |z| near 1. Few pairs are similar on a many-class dataset,
# so similar pairs are weighted by #pairs/#similar (HashNet's balance), which only helps together
# with the scaled θ. λ: the held-out best of 0.1/0.3/1 per length (less than 0.003 apart: the
# smaller); the authors' 3,000 iterations, since more overfit a head on fixed features.
HEAD_DEFAULTS = dict(lr=2.5e-3, lambda_={12: 1.0, 24: 0.3, 32: 0.3, 48: 0.1}, alpha_bits=10.0,
                     similar_weight="balanced")
PAPER_DEFAULTS = dict(lr=DEFAULT_LR, lambda_=DEFAULT_LAMBDA, alpha_bits=None, similar_weight=1.0)
# Whole-net fine-tuning of another pretrained net (--backbone without --features): the head's α,
# pair weights and λ, warm-started from a stored-mode run (its upper layers and head fitted), the
# whole net at lr 1e-4 (fch 1e-3 through its lr_mult 10), the head's BatchNorm statistics
# recomputed after training (dhn.recalibrate). 1e-4 is the best of the three rates tried
# (docs/lab/2026-12-07-stored-mode-and-whole-net.md); not cross-validated further, because a CPU
# iteration of the whole net costs seconds.
FINETUNE_LR = 1e-4
# The stored mode (dhn.stored, make train UPPER=): the layers above the cut train on their stored
# inputs; base lr and the upper layers' lr multiplier (×10: the fch's rate), where they come from:
# docs/lab/2026-12-07-stored-mode-and-whole-net.md.
UPPER_DEFAULTS = dict(lr=1e-3, backbone_lr_mult=10.0)


def mode_defaults(dataset, bits, head, finetune=False, upper=False):
    """{lr, lambda_, alpha, similar_weight, backbone_lr_mult} a run uses where no option says
    otherwise: the paper's (α 1, similar pairs weighted 1) for the dataset's own backbone,
    HEAD_DEFAULTS for a head on another pretrained net's features (``head``: --features or
    --backbone; ``finetune``: the whole net trains, lr FINETUNE_LR; ``upper``: the stored mode,
    UPPER_DEFAULTS). The demo keeps its own lr and λ."""
    d = dict(HEAD_DEFAULTS if head else PAPER_DEFAULTS, backbone_lr_mult=1.0)
    if head and finetune:
        d["lr"] = FINETUNE_LR
    if head and upper:
        d.update(UPPER_DEFAULTS)
    if dataset == "demo" and not head:
        d.update(lr=DEMO_LR, lambda_=DEMO_LAMBDA)
    if isinstance(d["lambda_"], dict):   # measured per length: the nearest measured length's
        d["lambda_"] = d["lambda_"][min(d["lambda_"], key=lambda k: (abs(k - bits), k))]
    alpha_bits = d.pop("alpha_bits")
    d["alpha"] = 1.0 if alpha_bits is None else alpha_bits / bits
    return d


VARIANTS = ("dhn", "dhn-q", "dhn-e")   # dhn-b is dhn's net, retrieved without sign()
BITS = (12, 24, 32, 48)
DATASETS = {
    # name: backbone, number of labels, and the solver's schedule (authors' values for AlexNet)
    "cifar10": dict(backbone="alexnet", num_labels=10),
    "nuswide21": dict(backbone="alexnet", num_labels=21),
    "flickr25k": dict(backbone="alexnet", num_labels=38),
    "demo": dict(backbone="tiny", num_labels=6),
}
BACKBONES = {
    "alexnet": dict(size=256, crop=227, mean=(104, 117, 123), scale=1.0),
    # inputs scaled to about [-1, 1], as Caffe's own small-image examples do
    "tiny": dict(size=32, crop=28, mean=(128, 128, 128), scale=1 / 128),
}
SOLVER_DEFAULTS = dict(lr_policy="step", gamma=0.5, stepsize=500, max_iter=3000,
                       momentum=0.9, weight_decay=0.0005, display=20, snapshot=500,
                       random_seed=SEED)
DEMO_SOLVER = dict(stepsize=400, max_iter=1200, snapshot=400, display=50)
DEMO_LR = 1e-2
# A from-scratch net saturates tanh at λ = 10 before its codes carry information (tried).
DEMO_LAMBDA = 1.0

PROTOTXT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "prototxt")
# the paper's backbone as a deploy net that the stored mode cuts (alexnet_deploy(), committed)
ALEXNET_DEPLOY = os.path.normpath(os.path.join(os.path.abspath(PROTOTXT_DIR), "alexnet", "deploy.prototxt"))

LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
FCH_LEARN = [dict(lr_mult=10, decay_mult=1), dict(lr_mult=20, decay_mult=0)]


def _conv(bottom, n_out, kernel, stride=1, pad=0, group=1, bias=0.0):
    return L.Convolution(bottom, num_output=n_out, kernel_size=kernel, stride=stride, pad=pad,
                         group=group, param=LEARN,
                         weight_filler=dict(type="gaussian", std=0.01),
                         bias_filler=dict(type="constant", value=bias))


def _fc(bottom, n_out, std=0.005, bias=0.1, param=LEARN):
    return L.InnerProduct(bottom, num_output=n_out, param=param,
                          weight_filler=dict(type="gaussian", std=std),
                          bias_filler=dict(type="constant", value=bias))


def alexnet_body(n, train):
    """conv1–fc7 as in BVLC's models/bvlc_alexnet/train_val.prototxt (names, shapes, fillers)."""
    n.conv1 = _conv(n.data, 96, 11, stride=4)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.norm1 = L.LRN(n.conv1, local_size=5, alpha=1e-4, beta=0.75)
    n.pool1 = L.Pooling(n.norm1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.conv2 = _conv(n.pool1, 256, 5, pad=2, group=2, bias=0.1)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.norm2 = L.LRN(n.conv2, local_size=5, alpha=1e-4, beta=0.75)
    n.pool2 = L.Pooling(n.norm2, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.conv3 = _conv(n.pool2, 384, 3, pad=1)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.conv4 = _conv(n.conv3, 384, 3, pad=1, group=2, bias=0.1)
    n.relu4 = L.ReLU(n.conv4, in_place=True)
    n.conv5 = _conv(n.conv4, 256, 3, pad=1, group=2, bias=0.1)
    n.relu5 = L.ReLU(n.conv5, in_place=True)
    n.pool5 = L.Pooling(n.conv5, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.fc6 = _fc(n.pool5, 4096)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    if train:
        n.drop6 = L.Dropout(n.fc6, dropout_ratio=0.5, in_place=True)
    n.fc7 = _fc(n.fc6, 4096)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    if train:
        n.drop7 = L.Dropout(n.fc7, dropout_ratio=0.5, in_place=True)
    return n.fc7


def tiny_body(n, train):
    """A small CNN for 28×28 crops, trained from scratch (the offline demo's backbone)."""
    n.conv1 = L.Convolution(n.data, num_output=32, kernel_size=5, pad=2, param=LEARN,
                            weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, num_output=32, kernel_size=5, pad=2, param=LEARN,
                            weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.fc7 = L.InnerProduct(n.pool2, num_output=256, param=LEARN,
                           weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    return n.fc7


BODIES = {"alexnet": alexnet_body, "tiny": tiny_body}

# What fch sits on, one of four kinds (Backbone.kind):
BUILT = "built"         # a net this module builds (BODIES: the paper's AlexNet, the demo's tiny CNN)
FOREIGN = "foreign"     # another Caffe deploy net's layers up to a feature layer (foreign_backbone)
FEATURES = "features"   # a frozen net's stored features, D×1×1 per image, fed straight to fch
STORED = "stored"       # a foreign net's stored outputs at a cut, C×H×W, feeding the layers above it


@dataclass(frozen=True)
class Backbone:
    """The net below fch and what feeds it: the one description every generator, the data layer
    and the run's plan read (made by built_backbone, foreign_backbone, features_backbone,
    stored_backbone). ``input``: the training net's input blob; ``size``/``crop``/``mean``/
    ``scale``: the images' transform (None where the net reads stored values); ``feature``: a
    foreign net's top blob; ``layers``: its deploy layers (above the cut, when stored); ``dim``:
    the features' length; ``shape``/``cut``: the stored outputs' C×H×W and the layer they end at."""
    kind: str
    name: str
    input: str = "data"
    size: int = None
    crop: int = None
    mean: tuple = None
    scale: float = 1.0
    feature: str = None
    layers: tuple = ()
    dim: int = None
    shape: tuple = None
    cut: str = None

    @property
    def takes_images(self):
        return self.kind in (BUILT, FOREIGN)

    @property
    def spliced(self):
        """Its layers come from a deploy net (spliced in place of a placeholder, _splice)."""
        return self.kind in (FOREIGN, STORED)


def built_backbone(name):
    """One of BACKBONES, built by BODIES."""
    return Backbone(BUILT, name, **BACKBONES[name])


def hash_head(n, feature, bits, feature_norm=False, global_stats=False):
    """fch (K outputs, gaussian 0.01, lr 10/20) → TanH → ``code``. feature_norm puts a
    BatchNorm (no scale: fch's weights are the affine part) between the backbone's features
    and fch: per-dimension standardisation with batch statistics in training and their
    moving averages in TEST, for features that are non-negative with a large common mean.
    global_stats: the stored averages in training too (a head fitted before, fine-tuned on)."""
    if feature_norm:
        n.fch_bn = L.BatchNorm(feature, param=[dict(lr_mult=0, decay_mult=0)] * 3,
                               **({"batch_norm_param": dict(use_global_stats=True)} if global_stats else {}))
        feature = n.fch_bn
    n.fch = L.InnerProduct(feature, num_output=bits, param=FCH_LEARN,
                           weight_filler=dict(type="gaussian", std=0.01),
                           bias_filler=dict(type="constant", value=0))
    n.code = L.TanH(n.fch)
    return n.code


def _python_loss(bottoms, layer, weight, param_str=""):
    return L.Python(*bottoms, module="dhn_layers", layer=layer, param_str=param_str,
                    loss_weight=weight)


def features_backbone(name, dim):
    """The frozen-feature mode's backbone: precomputed features (dhn.features), D×1×1 per image,
    fed straight to fch. ``name`` says which net and layer made them."""
    return Backbone(FEATURES, name, input="feature", dim=int(dim))


def stored_backbone(bb, upper, blob, shape, cut):
    """The stored mode's backbone (dhn.stored): the output ``blob`` of the lower layers up to
    layer ``cut`` (C×H×W per image, stored once) feeds ``upper``, the rest of the foreign backbone
    ``bb`` up to its feature layer, which trains with fch."""
    return replace(bb, kind=STORED, input=blob, layers=tuple(upper), shape=tuple(int(d) for d in shape),
                   cut=cut, crop=None, size=None)


def data_layer(n, bb, data_dir, batch, mirror=True, shuffle=True, seed=SEED, start_iter=0):
    """The training net's data: tops ``bb.input`` and ``label``.

    shuffle=True: dhn_data.ShuffledData, a Python layer that reshuffles the split every epoch
    (as the authors' group's ImageData ``shuffle: true`` does); False: Caffe's two Data layers,
    which read the LMDBs in key order, the same order every epoch (stored outputs, which no
    Caffe layer reads: ShuffledData in key order)."""
    transform = {} if not bb.takes_images else dict(crop_size=bb.crop, mirror=mirror, mean_value=list(bb.mean),
                                                    **({"scale": bb.scale} if bb.scale != 1 else {}))
    if shuffle or not bb.takes_images:      # stored outputs (frozen features too) have no Caffe layer that reads them
        params = dict(source=data_dir, batch_size=batch, seed=seed, **({"start_iter": start_iter} if start_iter else {}),
                      **({} if shuffle else {"shuffle": False}))
        if transform:
            params.update(crop_size=transform["crop_size"], mirror=mirror, mean=[float(v) for v in bb.mean],
                          **({"scale": float(bb.scale)} if bb.scale != 1 else {}))
        n[bb.input], n.label = L.Python(module="dhn_data", layer="ShuffledData", ntop=2,
                                           param_str=repr(params), name="data")
        return
    n[bb.input] = L.Data(source="%s/images" % data_dir, backend=P.Data.LMDB, batch_size=batch,
                         transform_param=transform)
    n.label = L.Data(source=data_dir + "/labels", backend=P.Data.LMDB, batch_size=batch)


def foreign_backbone(spec, mean=(104, 117, 123), scale=1.0):
    """Another backbone: ``spec`` is ``deploy.prototxt:layer``, any Caffe deploy net and the layer
    to put fch on. The net is cut after that layer and the in-place layers on its output (its
    ReLU, Dropout); the input blob's name and the crop come from the net's input shape (3×S×S,
    S ≤ 256, since the LMDBs hold 256×256 images); ``mean`` is BGR. Returns a FOREIGN Backbone
    with the kept layers. Errors name the file and say what is wrong."""
    path, sep, feature = spec.rpartition(":")
    if not sep or not path or not feature:
        raise ValueError("backbone %r: give it as DEPLOY.prototxt:LAYER" % spec)
    net = caffe_pb2.NetParameter()
    try:
        with open(path) as fh:
            text_format.Merge(fh.read(), net)
    except (OSError, text_format.ParseError) as e:
        raise ValueError("%s: not a readable Caffe net prototxt (%s)" % (path, e)) from None
    inputs = [layer for layer in net.layer if layer.type == "Input"]
    if inputs and inputs[0].input_param.shape:
        blob, dims = inputs[0].top[0], list(inputs[0].input_param.shape[0].dim)
    elif net.input:   # the old style: input: "data" + input_shape or input_dim
        blob, dims = net.input[0], list(net.input_shape[0].dim) if net.input_shape else list(net.input_dim[:4])
    else:
        raise ValueError("%s: no input blob (an Input layer or an input: field)" % path)
    if len(dims) != 4 or dims[1] != 3 or dims[2] != dims[3] or not 0 < dims[2] <= 256:
        raise ValueError("%s: input %r has shape %s; a backbone needs N×3×S×S with S <= 256" % (path, blob, dims))
    kept, top = [], None
    for layer in net.layer:
        if layer.type == "Input":
            continue
        if top is not None and not (list(layer.bottom) == [top] and list(layer.top) == [top]):
            break
        kept.append(layer)
        if layer.name == feature:
            top = layer.top[0]
    if top is None:
        raise ValueError("%s has no layer %r (its layers: %s)" % (path, feature, ", ".join(l.name for l in net.layer)))
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("deploy", "train_val", "train", "test"):   # Caffe's generic names: the model's folder says more
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) or name
    return Backbone(FOREIGN, name, input=blob, size=256, crop=dims[2], mean=tuple(mean), scale=scale,
                    feature=top, layers=tuple(kept))


def _backbone(dataset, backbone):
    """A Backbone: the dataset's built one for None, a BACKBONES name, or a Backbone as it is."""
    backbone = backbone or DATASETS[dataset]["backbone"]
    return backbone if isinstance(backbone, Backbone) else built_backbone(backbone)


def _body(n, bb, train):
    """The backbone's top blob in n; for a spliced one, a placeholder that _splice replaces."""
    if bb.kind == FEATURES:
        return n[bb.input]
    if bb.kind == BUILT:
        return BODIES[bb.name](n, train=train)
    n[bb.feature] = L.Input(shape=dict(dim=[1]))
    return n[bb.feature]


def _splice(proto, bb):
    """Put a foreign backbone's layers where its feature placeholder (an Input layer) stands."""
    if bb.spliced:
        layers = list(proto.layer)
        at = next(i for i, l in enumerate(layers) if l.type == "Input" and list(l.top) == [bb.feature])
        del proto.layer[:]
        proto.layer.extend(layers[:at] + list(bb.layers) + layers[at + 1:])
    return proto


def without_dropout(proto):
    """Leave a foreign backbone's Dropout layers out of a training net whose features go through
    the BatchNorm before fch: dropout before a conv + ReLU shifts the statistics that BatchNorm
    stores, not only their noise (measured on SqueezeNet's drop9 → conv_final:
    docs/lab/2026-12-07-stored-mode-and-whole-net.md), so TEST would normalise with statistics of
    other inputs. The deploy net has no dropout either."""
    kept = [layer for layer in proto.layer if layer.type != "Dropout"]
    del proto.layer[:]
    proto.layer.extend(kept)
    return proto


def scale_backbone_lr(proto, mult):
    """Multiply the lr of every learnable layer but fch by mult (0 freezes the backbone):
    weights lr_mult m, biases 2m, as BVLC's nets and fch's 10/20 are."""
    for layer in proto.layer:
        if layer.type in ("Convolution", "InnerProduct") and not layer.name.startswith("fch"):
            params = list(layer.param) or [caffe_pb2.ParamSpec(lr_mult=1, decay_mult=1),
                                           caffe_pb2.ParamSpec(lr_mult=2, decay_mult=0)]
            del layer.param[:]
            for p in params:
                p.lr_mult = p.lr_mult * mult
                layer.param.add().CopyFrom(p)
    return proto


def train_net(dataset, bits, variant, lambda_=DEFAULT_LAMBDA, data_dir=None, batch=BATCH,
              backbone=None, mirror=True, dropout=True, shuffle=True, seed=SEED, alpha=1.0,
              backbone_lr_mult=1.0, feature_norm=False, start_iter=0, similar_weight=1.0, norm_stats="batch"):
    """The training net: a converted split → backbone → fch → tanh → DHN losses.

    backbone: None (the dataset's), a BACKBONES name, or a Backbone of any kind (FEATURES: the
    split's stored features, blobs.npy, feed fch). shuffle: see data_layer.
    alpha: the scale of θ = α⟨z_i, z_j⟩ in the pairwise cross-entropy loss (1 in the paper).
    backbone_lr_mult: scales the backbone's lr multipliers (fch keeps 10/20).
    feature_norm: a BatchNorm before fch (hash_head). start_iter: batches the reshuffling data
    layer skips (a resumed run continues its data stream, dhn_data). similar_weight: the weight
    of a similar pair in the pairwise losses (1 in the paper; "balanced": #pairs / #similar pairs
    of the batch, dhn_losses). norm_stats "global": the BatchNorm before fch keeps the statistics it
    was fitted with (a whole-net fine-tuning warm-started from a fitted head) instead of each
    batch's, so training and TEST normalise alike from the first iteration on."""
    if variant not in VARIANTS:
        raise ValueError("unknown variant %r (one of %s; dhn-b trains as dhn)" % (variant, ", ".join(VARIANTS)))
    bb = _backbone(dataset, backbone)
    data_dir = data_dir or "data/%s/lmdb/train" % dataset
    n = NetSpec()
    data_layer(n, bb, data_dir, batch, mirror=mirror, shuffle=shuffle, seed=seed, start_iter=start_iter)
    feature = _body(n, bb, train=dropout)
    code = hash_head(n, feature, bits, feature_norm, global_stats=(norm_stats == "global"))
    pair_params = {} if similar_weight == 1 else {"similar_weight": similar_weight}
    if variant == "dhn-e":
        n.pair_loss = _python_loss([code, n.label], "PairwiseSquaredLoss", 1.0, repr(pair_params) if pair_params else "")
    else:
        pair_params = dict({"alpha": float(alpha)} if alpha != 1 else {}, **pair_params)
        n.pair_loss = _python_loss([code, n.label], "PairwiseCrossEntropyLoss", 1.0,
                                   repr(pair_params) if pair_params else "")
    if variant != "dhn-q" and lambda_ > 0:
        n.quant_loss = _python_loss([code], "QuantizationLoss", lambda_ * bits / batch)
    proto = _splice(n.to_proto(), bb)
    if feature_norm and bb.spliced:
        without_dropout(proto)
    if backbone_lr_mult != 1:
        scale_backbone_lr(proto, backbone_lr_mult)
    proto.name = "%s-%s-%d" % (bb.name, variant, bits)
    # The labels bottom gets no gradient (Caffe would otherwise ask the layer for one).
    for layer in proto.layer:
        if layer.type == "Python" and len(layer.bottom) == 2:
            layer.propagate_down.extend([True, False])
    return proto


def deploy_net(dataset, bits, batch=BATCH, backbone=None, feature_norm=False):
    """The encoding net: Input (batch×3×crop×crop, batch×D×1×1 features, or batch×C×H×W stored
    lower-layer outputs) → backbone → fch → tanh ``code``."""
    bb = _backbone(dataset, backbone)
    n = NetSpec()
    if bb.kind == FEATURES:
        dims = [batch, bb.dim, 1, 1]
    elif bb.kind == STORED:
        dims = [batch] + list(bb.shape)
    else:
        dims = [batch, 3, bb.crop, bb.crop]
    n[bb.input] = L.Input(shape=dict(dim=dims))
    hash_head(n, _body(n, bb, train=False), bits, feature_norm)
    proto = _splice(n.to_proto(), bb)
    proto.name = "%s-deploy-%d" % (bb.name, bits)
    return proto


def backbone_net(bb, batch=BATCH):
    """The backbone alone, Input → its feature blob (TEST phase): what dhn.features forwards.
    The feature blob is the last layer's top."""
    n = NetSpec()
    n[bb.input] = L.Input(shape=dict(dim=[batch, 3, bb.crop, bb.crop]))
    n.feature_out = L.Split(_body(n, bb, train=False))   # a handle for to_proto; removed below
    proto = _splice(n.to_proto(), bb)
    del proto.layer[-1]
    proto.name = "%s-features" % bb.name
    return proto


def time_net(dataset, bits, variant="dhn", batch=BATCH, lambda_=DEFAULT_LAMBDA):
    """The training net with Input blobs in place of its two LMDBs: what `caffe time` runs
    (it needs no data; the losses, Python layers included, are timed as in training)."""
    proto = train_net(dataset, bits, variant, lambda_=lambda_, batch=batch)
    crop = BACKBONES[DATASETS[dataset]["backbone"]]["crop"]
    shapes = {"data": [batch, 3, crop, crop], "label": [batch, DATASETS[dataset]["num_labels"], 1, 1]}
    for layer in proto.layer:
        if is_data_layer(layer):
            name, tops = layer.name, list(layer.top)
            layer.Clear()
            layer.name, layer.type = name, "Input"
            layer.top.extend(tops)
            for top in tops:
                layer.input_param.shape.add().dim.extend(shapes[top])
    proto.name += "-time"
    return proto


def is_data_layer(layer):
    """Caffe's Data layer or the project's ShuffledData Python layer."""
    return layer.type == "Data" or (layer.type == "Python" and layer.python_param.module == "dhn_data")


def data_transform(net):
    """(crop, BGR mean, scale) of a training net's image data layer (a NetParameter), whichever
    data layer it has; (None, None, 1.0) for a net on stored outputs (frozen features, the stored mode). Encoding applies the same
    transform in Caffe's TEST phase (centre crop), read from the one place that defines it."""
    import ast
    layer = next(layer for layer in net.layer if is_data_layer(layer))
    if layer.type == "Python":
        p = ast.literal_eval(layer.python_param.param_str)
        if "crop_size" not in p:
            return None, None, 1.0
        return p["crop_size"], tuple(p["mean"]), p.get("scale", 1.0)
    if not layer.HasField("transform_param"):
        return None, None, 1.0
    t = layer.transform_param
    return t.crop_size, tuple(t.mean_value), t.scale


def solver(train_net_path, snapshot_prefix, lr=DEFAULT_LR, **overrides):
    s = caffe_pb2.SolverParameter()
    s.train_net = train_net_path
    s.base_lr = lr
    for key, value in dict(SOLVER_DEFAULTS, **overrides).items():
        setattr(s, key, value)
    s.snapshot_prefix = snapshot_prefix
    s.solver_mode = caffe_pb2.SolverParameter.CPU
    return s


CANONICAL_BITS, CANONICAL_VARIANT = 48, "dhn"   # the paper's headline, one set per dataset
EXTRA_DIR = os.path.join(PROTOTXT_DIR, "extra")   # git-ignored: every other combination
HEADER = "# Generated by tools/dhn/netgen.py (make prototxt); do not edit by hand.\n"


def prototxt_set(dataset, bits, variant, folder):
    """{file name: text} of one train net, solver and deploy net, as `caffe train -solver` uses
    them from the project root: ``folder`` is where they live relative to it, and the solver
    snapshots into that same folder (as Caffe's examples do), so it exists on a fresh clone."""
    demo = dataset == "demo"
    net = "%s/train_%s_%d.prototxt" % (folder, variant, bits)
    extra = dict(DEMO_SOLVER, lr=DEMO_LR) if demo else {}
    files = {
        "train_%s_%d.prototxt" % (variant, bits): train_net(dataset, bits, variant,
                                                           lambda_=DEMO_LAMBDA if demo else DEFAULT_LAMBDA),
        "solver_%s_%d.prototxt" % (variant, bits): solver(net, "%s/%s_%d" % (folder, variant, bits), **extra),
        "deploy_%d.prototxt" % bits: deploy_net(dataset, bits),
    }
    return {name: HEADER + str(proto) for name, proto in files.items()}


def alexnet_deploy():
    """BVLC AlexNet conv1–fc7 alone as a deploy net (batch 1), prototxt/alexnet/deploy.prototxt:
    what the stored mode cuts (foreign_backbone) when a run names no other backbone."""
    proto = backbone_net(_backbone("cifar10", "alexnet"), batch=1)
    proto.name = "alexnet"
    return proto


def committed_files():
    """{relative path under prototxt/: text}: the canonical set of each dataset (DHN, 48 bits;
    the demo's 16) and AlexNet's deploy net, exactly what `make prototxt` writes and the repository
    holds."""
    files = {"alexnet/deploy.prototxt": str(alexnet_deploy())}
    for dataset in DATASETS:
        bits = 16 if dataset == "demo" else CANONICAL_BITS
        for name, text in prototxt_set(dataset, bits, CANONICAL_VARIANT, "prototxt/" + dataset).items():
            files["%s/%s" % (dataset, name)] = text
    return files


def write_files(files, out, check=False):
    """Write {relative path: text} under out (only what changed); with check, write nothing and
    return the stale paths, printing a diff."""
    stale = []
    for rel, text in sorted(files.items()):
        path = os.path.join(out, rel)
        old = open(path).read() if os.path.exists(path) else None
        if old == text:
            continue
        if check:
            stale.append(rel)
            sys.stdout.writelines(difflib.unified_diff((old or "").splitlines(True), text.splitlines(True),
                                                       rel, "generated", n=1))
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, text)
        print("wrote %s" % os.path.relpath(path))
    return stale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare prototxt/ with the generator")
    ap.add_argument("--out", default=PROTOTXT_DIR)
    ap.add_argument("--dataset", help="write one other combination into prototxt/extra/<dataset>/ (git-ignored)")
    ap.add_argument("--bits", type=int)
    ap.add_argument("--variant", choices=VARIANTS)
    args = ap.parse_args(argv)
    if args.dataset or args.bits or args.variant:
        dataset = args.dataset or "cifar10"
        if dataset not in DATASETS:
            print("error: unknown dataset %r (one of %s)" % (dataset, ", ".join(DATASETS)), file=sys.stderr)
            return 2
        bits, variant = args.bits or CANONICAL_BITS, args.variant or CANONICAL_VARIANT
        out = os.path.join(EXTRA_DIR, dataset) if args.out == PROTOTXT_DIR else args.out
        root = os.path.abspath(os.path.join(PROTOTXT_DIR, ".."))
        rel = os.path.relpath(os.path.abspath(out), root)
        write_files(prototxt_set(dataset, bits, variant, rel), out)
        print("train with: tools/caffe train -solver %s/solver_%s_%d.prototxt" % (rel, variant, bits))
        return 0
    stale = write_files(committed_files(), args.out, check=args.check)
    if stale:
        print("prototxt/ is stale in %d file(s): run `make prototxt`" % len(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
