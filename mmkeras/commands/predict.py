"""`mmkeras predict`: ask a trained model about one image."""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="answer a question about an image, score a caption, or caption an image with a trained model",
        description=(
            "Load a folder written by `mmkeras train`, decode IMAGE (PNG, JPEG, GIF or BMP) and\n"
            "tokenize TEXT exactly as in training, and print the most likely answer and its\n"
            "probability, tab-separated (and the runners-up with --top-k). A captioner takes no\n"
            "TEXT: it prints the caption it writes for IMAGE and its log-probability. A model trained\n"
            "with --modality-dropout answers with IMAGE or TEXT left out."
        ),
        epilog=(
            "examples:\n"
            "  mmkeras predict saved_models/vqa-easy_vqa shape.png 'what color is the shape?'\n"
            "  mmkeras predict saved_models/vqa-fashion_mnist_captions shoe.png 'a photo of a sneaker'\n"
            "  mmkeras predict saved_models/caption_transformer-easy_vqa_captions shape.png\n"
            "  mmkeras predict saved_models/vqa-easy_vqa --text 'what shape is it?'   (no image: a model\n"
            "      trained with --modality-dropout; an empty TEXT '' means no text)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a folder written by `mmkeras train`")
    parser.add_argument("image", nargs="?", default=None,
                        help="an image file; left out (or '') for no image, with a model trained with --modality-dropout")
    parser.add_argument("text", nargs="?", default=None,
                        help="the question or caption (quote it); left out for a captioner, or for no text")
    parser.add_argument("--text", dest="text_option", default=None, metavar="TEXT",
                        help="the question or caption, given without an image (IMAGE left out)")
    parser.add_argument("--top-k", type=int, default=1, help="also list the k most likely answers; default 1")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def print_answer(result, indent=""):
    """Print one answer: the class and its probability (and runners-up), labels, or a value."""
    if "caption" in result:  # a captioner: the caption it wrote
        print(f"{indent}{result['caption']}\t(log-probability {result['score']:.4f})")
        return
    if "similarity" in result:  # a dual encoder: how well the text describes the image
        print(f"{indent}similarity {result['similarity']:.4f}	(cosine, from -1 to 1)")
        return
    if "answer" not in result:  # a multi-task model: one answer per output
        for name, answer in result.items():
            print(f"{indent}{name}:")
            print_answer(answer, indent + "  ")
        return
    if "probability" in result:
        print(f"{indent}{result['answer']}\t(probability {result['probability']:.4f})")
        for name, probability in result["top"][1:]:
            print(f"{indent}  {name}\t{probability:.4f}")
    elif "probabilities" in result:
        print(f"{indent}{', '.join(result['answer']) or '(no label)'}")
        for name, probability in sorted(result["probabilities"].items(), key=lambda t: -t[1]):
            print(f"{indent}  {name}\t{probability:.4f}")
    else:
        print(f"{indent}{result['answer']}")


def run(args):
    import json

    from mmkeras.training import predict

    if args.text_option is not None:
        if args.text is not None:
            raise ValueError(f"Give the text once, as TEXT or as --text. Received: {args.text!r} and --text {args.text_option!r}")
        args.text = args.text_option
    image = args.image or None  # '' = no image
    if image is None and args.text is None:
        raise ValueError("predict needs an IMAGE, a TEXT (--text), or both. Received: neither")
    result = predict(args.model, image, args.text, top_k=max(1, args.top_k))
    if args.json:
        print(json.dumps(result))
        return 0
    print_answer(result)
    return 0
