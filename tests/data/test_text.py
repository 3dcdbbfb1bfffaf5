import pickle

from deepseek_hf.data.text import CJKWordTokenizer, count_cjk, hash64, normalize


def test_cjk_characters_are_units_and_words_stay_whole():
    tok = CJKWordTokenizer()
    assert tok.word_tokenize("秦川雄帝宅，It's 2 cats.") == [
        "秦",
        "川",
        "雄",
        "帝",
        "宅",
        "，",
        "It's",
        "2",
        "cats",
        ".",
    ]
    # kana are per character too; accented Latin words stay one unit
    assert tok.word_tokenize("東京へ café") == ["東", "京", "へ", "café"]


def test_sentences_split_on_cjk_and_ascii_terminals_but_not_decimals():
    tok = CJKWordTokenizer()
    text = "我爱你。你好吗？Hello there. Pi is 3.14 ok!\n新行"
    assert tok.sent_tokenize(text) == ["我爱你。", "你好吗？", "Hello there.", "Pi is 3.14 ok!", "新行"]
    short = "一。二"
    assert [short[a:b] for a, b in tok.span_tokenize(short)] == ["一。", "二"]


def test_tokenizer_pickles_and_is_accepted_by_datatrove():
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tok = pickle.loads(pickle.dumps(CJKWordTokenizer()))
    assert load_word_tokenizer(tok) is tok


def test_normalize_and_hash():
    assert normalize("Hello,  WORLD 42!") == "hello world 0"
    assert normalize("床前明月光，疑是地上霜。") == "床前明月光 疑是地上霜"
    assert hash64("a") == hash64("a") != hash64("a", salt="dump-1")
    assert count_cjk("ab床前c") == 2
