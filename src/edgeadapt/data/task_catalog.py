"""The task collection's catalog: which BIG-bench tasks (and Natural Instructions v1 subtasks, which BIG-bench
ships) become LoRA-Gen tasks, with the description a generator reads and two paraphrases of it.

How the tasks were chosen (docs/LORAGEN.md): short rows (inputs of a sentence or less, answers of a few
words), an automatic score, and a skill the 135M model can move. Groups of tasks share one input format and
differ only in what they ask (a list and a function to apply to it; a word and a form to give; one MC-TACO
question and one of three judgements about it), so that the description, not the input, says what to do.
Held-out tasks come from source datasets no training task uses (`source` below); `tasks.check_disjoint`
enforces it.

Descriptions: BIG-bench's own one-line descriptions are too terse to act on (`A class for English plurals`),
so each task has a hand-written paragraph and two hand-written paraphrases (for list functions, the source's
own function phrase inside three sentence frames); Natural Instructions tasks use their crowdsourced
Definition as the description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: str
    """The source dataset: no held-out task shares one with a training task."""
    bigbench: str
    """The BIG-bench task path its examples come from."""
    kind: str
    """`exact`: the generated answer must match a reference (normalized); `choice`: the option with the
    highest log-likelihood must be the right one."""
    title: str
    """A short task name: all the zero-shot baseline is told."""
    description: str
    paraphrases: tuple[str, ...]
    heldout: bool = False
    choices: tuple[str, ...] = ()
    """For choice tasks: the options, in BIG-bench's spelling."""
    template: str = "{input}"
    """How an example's input becomes the prompt the tuned model sees (no description in it)."""
    last_line: bool = False
    """Keep only the input's last line (modified_arithmetic puts five solved examples before it)."""
    notes: dict = field(default_factory=dict)


LIST_FRAMES = (
    "You are given a list of natural numbers in square brackets. Apply this function to it: {f}. Reply with "
    "the resulting list, in the same bracket format, and nothing else.",
    "Input: a bracketed list of whole numbers. Output: the list obtained when you {f}, written as a "
    "bracketed list with commas.",
    "Transform the list of numbers as follows: {f}. Write only the output list, using square brackets.",
)

# list_functions concepts with a short, single-step rule (concept id -> the source's own function phrase).
LIST_CONCEPTS = {
    6: "the first 2 elements",
    8: "the first 6 elements",
    11: "elements 2 through 4",
    16: "replace element 2 with an 8",
    20: "replace the first element with the last element",
    21: "insert an 8 as element 2",
    22: "insert a 5 as element 2",
    25: "remove element 2",
    26: "remove element 3",
    29: "remove the first two elements",
    30: "remove the last two elements",
    33: "swap elements 1 and 4",
    34: "swap elements 2 and 3",
    37: "append 3",
    38: "append 9",
    45: "the input",
    46: "prepend 7",
    48: "remove all but element 1",
    49: "remove element 1",
    50: "prepend element 1",
    61: "remove all but the last element",
    62: "remove the last element",
    64: "remove the first and last elements",
    65: "prepend 9 and append 7",
    66: "left-rotate by 1",
    67: "swap the first and last elements",
    70: "concatenate input with itself",
    71: "add 2 to every element",
    72: "repeat every element 2 times in order of appearance",
    77: "input length",
    78: "maximum element",
    79: "sum of elements",
    80: "elements in reverse order",
    106: "elements in ascending order",
    107: "unique elements",
    169: "second largest element",
    198: "unique elements in descending order",
    241: "number of even elements",
    243: "number of odd elements",
    246: "number of unique elements",
}
# Concepts never trained on, from the same source: reported apart ("unseen concept, seen source"), since
# they share list_functions with training tasks and so are not held out in the strict sense.
LIST_UNSEEN_CONCEPTS = {
    59: "swap elements 4 and 8",
    96: "prepend 98 and append 37",
    117: "left-rotate by three elements",
    170: "remove all but element 1 and last element",
    182: "keep every third element",
    213: "three smallest elements in ascending order",
}


def _verb_phrase(function: str) -> str:
    """'the first 2 elements' -> 'keep the first 2 elements': the frames need a verb."""
    verbs = ("remove", "replace", "insert", "swap", "append", "prepend", "concatenate", "left-rotate", "add")
    verbs += ("repeat", "keep")
    return function if function.split()[0] in verbs else f"return {function}"


def list_task(concept: int, function: str, unseen: bool = False) -> TaskSpec:
    phrase = _verb_phrase(function)
    texts = [frame.format(f=phrase) for frame in LIST_FRAMES]
    return TaskSpec(
        name=f"list_c{concept:03d}",
        source="bigbench:list_functions",
        bigbench=f"list_functions/c{concept:03d}",
        kind="exact",
        title="List function",
        description=texts[0],
        paraphrases=tuple(texts[1:]),
        notes={"function": function, "unseen_concept": unseen},
    )


def _arith(name: str, digits: str, op: str, word: str, symbol: str, verb: str) -> TaskSpec:
    return TaskSpec(
        name=f"arith_{name}",
        source="bigbench:arithmetic",
        bigbench=f"arithmetic/{name}",
        kind="exact",
        title=f"{digits}-digit {word}",
        description=f"Each question asks for the {op} of two {digits}-digit numbers, as 'What is A {symbol} B?'. "
        f"Compute it exactly and reply with the result as a number written in digits, with no words.",
        paraphrases=(
            f"Answer arithmetic questions: {word} of two numbers with {digits} digits each. Give only the "
            "resulting integer.",
            f"You will be asked to {verb} two {digits}-digit integers. Respond with just the "
            "number that results.",
        ),
    )


ARITHMETIC = [
    _arith("1_digit_addition", "1", "sum", "addition", "plus", "add"),
    _arith("1_digit_subtraction", "1", "difference", "subtraction", "minus", "subtract"),
    _arith("1_digit_multiplication", "1", "product", "multiplication", "times", "multiply"),
    _arith("2_digit_addition", "2", "sum", "addition", "plus", "add"),
    _arith("2_digit_subtraction", "2", "difference", "subtraction", "minus", "subtract"),
    _arith("2_digit_multiplication", "2", "product", "multiplication", "times", "multiply"),
    _arith("3_digit_addition", "3", "sum", "addition", "plus", "add"),
    _arith("3_digit_subtraction", "3", "difference", "subtraction", "minus", "subtract"),
]


def _modified(name: str, op: str, plus_one: bool) -> TaskSpec:
    rule = f"their {op} plus one: compute the {op}, then add 1 more" if plus_one else f"exactly their {op}"
    return TaskSpec(
        name=f"modarith_{name}",
        source="bigbench:modified_arithmetic",
        bigbench=f"modified_arithmetic/{name}",
        kind="exact",
        title="Arrow arithmetic",
        description=f"Each line shows two numbers joined by an operator sign and then an arrow '->'. After the "
        f"arrow, write {rule}. Reply with the number only.",
        paraphrases=(
            f"Read 'A op B ->' and output {rule}. Digits only.",
            f"The arrow stands for an operation: the answer is {rule}. Respond with just that integer.",
        ),
        last_line=True,
        notes={"plus_one": plus_one},
    )


MODIFIED_ARITHMETIC = [
    _modified("three_digit_addition_control", "sum", False),
    _modified("three_digit_addition_plus_one", "sum", True),
    _modified("three_digit_subtraction_control", "difference", False),
    _modified("three_digit_subtraction_plus_one", "difference", True),
    _modified("two_digit_multiplication_control", "product", False),
    _modified("two_digit_multiplication_plus_one", "product", True),
]


def _mapping(name: str, path: str, title: str, description: str, p1: str, p2: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        source="bigbench:linguistic_mappings",
        bigbench=f"linguistic_mappings/{path}",
        kind="exact",
        title=title,
        description=description,
        paraphrases=(p1, p2),
    )


LINGUISTIC = [
    _mapping(
        "plural",
        "plural_json",
        "English plural",
        "You are given a single English noun in the singular. Reply with its plural form, spelled correctly, "
        "including irregular plurals such as 'mouse' to 'mice'.",
        "Make the noun plural. Output one word: the plural of the given singular noun.",
        "Given a singular English noun, write the form used for more than one of it.",
    ),
    _mapping(
        "past_tense",
        "past_tense_json",
        "English past tense",
        "You are given an English verb in its base form. Reply with its simple past tense, spelled correctly, "
        "including irregular verbs such as 'go' to 'went'.",
        "Put the English verb into the simple past. Output only the past-tense form.",
        "Given the infinitive of an English verb, write how it is said in the past (yesterday I ...).",
    ),
    _mapping(
        "de_past_tense",
        "de_past_tense_irregular_json",
        "German strong past tense",
        "You are given an irregular (strong) German verb in the infinitive. Reply with its simple past "
        "(Präteritum) for the first or third person singular, for example 'beginnen' to 'begann' and "
        "'befehlen' to 'befahl'.",
        "Conjugate the irregular German infinitive into the Präteritum (ich/er form). Write the one word only.",
        "Strong German verbs: give the simple past tense, first person singular, of the infinitive shown.",
    ),
    _mapping(
        "question_formation",
        "question_formation_json",
        "Question formation",
        "You are given a short English statement. Turn it into the yes/no question that asks whether it is "
        "true, changing the verb as needed ('he needs help' becomes 'does he need help'). Lower case, no "
        "question mark.",
        "Rewrite the statement as a yes-no question (add do/does/did and fix the verb); no question mark.",
        "Ask whether the given sentence holds: form the matching yes/no question, in lower case.",
    ),
    _mapping(
        "sentence_negation",
        "sentence_negation_json",
        "Sentence negation",
        "You are given a short English statement. Reply with its negation, adding 'not' with the right "
        "auxiliary and verb form ('the nurse plays tennis' becomes 'the nurse does not play tennis').",
        "Negate the sentence: say that the opposite is true by inserting do/does/did not. Lower case.",
        "Write the negative form of the given statement, e.g. 'he runs' becomes 'he does not run'.",
    ),
    _mapping(
        "pronoun_replacement",
        "pronoun_replacement_json",
        "Pronoun replacement",
        "You are given a sentence in which a person's name is repeated. Replace the repeated name with the "
        "correct pronoun (him, her, himself, herself), keeping every other word the same.",
        "Rewrite the sentence so the second mention of the same person becomes a pronoun or reflexive pronoun.",
        "Where a name occurs twice, swap the later one for the fitting pronoun ('James helped James' becomes "
        "'James helped himself').",
    ),
]


def _choice(name, path, source, title, choices, description, p1, p2, heldout=False, template="{input}"):
    return TaskSpec(
        name=name,
        source=source,
        bigbench=path,
        kind="choice",
        title=title,
        description=description,
        paraphrases=(p1, p2),
        heldout=heldout,
        choices=tuple(choices),
        template=template,
    )


def _bb_choice(name, choices, title, description, p1, p2, heldout=False, template="{input}"):
    short = name.split("/")[-1]
    return _choice(
        short, name, f"bigbench:{name.split('/')[0]}", title, choices, description, p1, p2, heldout, template
    )


CHOICE = [
    _bb_choice(
        "navigate",
        ("True", "False"),
        "Navigation",
        "You are given a sequence of movement instructions (steps forward or backward, turns). Follow them "
        "from a starting point and answer True if you end up back at the starting point, otherwise False.",
        "Trace the walking instructions; reply True when they lead back to where you began, else False.",
        "Do these step-and-turn instructions return the walker to the start? Answer True or False.",
    ),
    _bb_choice(
        "cs_algorithms/valid_parentheses",
        ("Valid", "Invalid"),
        "Bracket matching",
        "You are given a sequence of brackets of three kinds: (), [] and {}. Answer Valid if every bracket "
        "is closed by the matching kind in the right order, otherwise Invalid.",
        "Check whether the parentheses, square and curly brackets are properly nested and closed: Valid or "
        "Invalid.",
        "Is this bracket string balanced, each opener closed by its own kind in order? Reply Valid or Invalid.",
    ),
    _bb_choice(
        "implicatures",
        ("yes", "no"),
        "Implicatures",
        "Speaker 1 asks a question and Speaker 2 answers indirectly. Decide whether Speaker 2's answer means "
        "yes or no, and reply with that one word.",
        "Read the short exchange and say what the indirect reply implies: yes or no.",
        "Two people talk; the second does not answer directly. Does the answer amount to a yes or a no?",
    ),
    _bb_choice(
        "epistemic_reasoning",
        ("entailment", "non-entailment"),
        "Epistemic entailment",
        "You are given a premise and a hypothesis about what people know, think or assume. Reply entailment "
        "if the premise guarantees the hypothesis, otherwise non-entailment.",
        "Does the premise about beliefs and knowledge entail the hypothesis? Answer entailment or "
        "non-entailment.",
        "Judge the relation between premise and hypothesis (mental states such as knowing or suspecting): "
        "entailment or non-entailment.",
    ),
    _bb_choice(
        "strategyqa",
        ("Yes", "No"),
        "Implicit-reasoning yes/no questions",
        "Answer a yes/no question whose answer needs a few implicit steps of everyday or factual reasoning. "
        "Reply Yes or No.",
        "Think through the unstated facts the question relies on, then answer it with Yes or No.",
        "A general-knowledge question with a hidden chain of reasoning: say Yes or No.",
    ),
    _bb_choice(
        "winowhy",
        ("correct", "incorrect"),
        "Pronoun reasoning check",
        "A sentence with an ambiguous pronoun is followed by a claim about whom the pronoun refers to and a "
        "reason. Reply correct if the claim and its reasoning are right, otherwise incorrect.",
        "Judge the explanation of what the pronoun refers to: correct or incorrect.",
        "Given a Winograd sentence and someone's reasoning about its pronoun, is that reasoning correct or "
        "incorrect?",
    ),
    _bb_choice(
        "logical_fallacy_detection",
        ("Valid", "Invalid"),
        "Fallacy detection",
        "You are given a short argument. Reply Invalid if it commits a logical fallacy (such as an ad hominem "
        "attack or an appeal to nature), otherwise Valid.",
        "Is the argument sound reasoning (Valid) or a fallacy (Invalid)?",
        "Spot formal and informal fallacies: answer Valid for a good argument, Invalid for a fallacious one.",
    ),
    _bb_choice(
        "metaphor_boolean",
        ("True", "False"),
        "Metaphor paraphrase",
        "A metaphorical sentence and a second sentence are separated by '<-->'. Reply True if the second "
        "sentence correctly paraphrases the meaning of the metaphor, otherwise False.",
        "Does the sentence after '<-->' say what the metaphor before it means? True or False.",
        "Check a paraphrase of a figurative sentence: True when it captures the intended meaning, else False.",
    ),
    _bb_choice(
        "sports_understanding",
        ("plausible", "implausible"),
        "Sports plausibility",
        "You are given a short statement about an athlete doing something in a game. Reply plausible if the "
        "action fits the athlete's sport, otherwise implausible.",
        "Could this sentence about a sports player be true? Answer plausible or implausible.",
        "Judge whether the athlete and the action belong to the same sport: plausible or implausible.",
        heldout=True,
    ),
    _bb_choice(
        "anachronisms",
        ("Yes", "No"),
        "Anachronisms",
        "You are given a sentence that places people or things in a time period. Reply Yes if it contains an "
        "anachronism (something that did not exist at that time), otherwise No.",
        "Does the sentence mix elements from different eras? Answer Yes or No.",
        "Spot historical impossibilities: is anything in the sentence out of its time? Yes or No.",
        heldout=True,
    ),
]

NI = "natural_instructions/subtask"
MCTACO_LEAD = (
    "Questions about a sentence may involve temporal reasoning: event duration, whether an event is transient "
    "or stationary, event ordering, absolute time points and frequency. "
)
NI_TASKS = [
    _choice(
        "mctaco_temporal_presence",
        f"{NI}018_mctaco_temporal_reasoning_presence",
        "ni:mctaco",
        "Temporal reasoning presence",
        ("Yes.", "No."),
        MCTACO_LEAD
        + "Answer Yes if the given question involves one of these temporal phenomena, otherwise No.",
        "Does answering the question need temporal reasoning (duration, ordering, time point, frequency, "
        "stationarity)? Yes or No.",
        "Decide whether the question about the sentence is a temporal one. Reply Yes or No.",
    ),
    _choice(
        "mctaco_temporal_category",
        f"{NI}019_mctaco_temporal_reasoning_category",
        "ni:mctaco",
        "Temporal category check",
        ("Yes.", "No."),
        MCTACO_LEAD + "A question comes with a proposed category; answer Yes if the question belongs to that "
        "category, otherwise No.",
        "Is the category given after the question the right kind of temporal reasoning for it? Yes or No.",
        "Check the label: does the question really ask about the named temporal category? Answer Yes or No.",
    ),
    _choice(
        "mctaco_span",
        f"{NI}020_mctaco_span_based_question",
        "ni:mctaco",
        "Explicit answer in sentence",
        ("Yes.", "No."),
        "The answer will be 'yes' if the provided sentence contains an explicit mention that answers the given "
        "question; otherwise the answer should be 'no'. Answers implied only by instinct or common sense are "
        "'no'.",
        "Is the answer to the question stated outright in the sentence? Yes or No.",
        "Reply Yes only when the sentence itself spells out the answer to the question; otherwise No.",
    ),
    _choice(
        "mctaco_grammatical",
        f"{NI}021_mctaco_grammatical_logical",
        "ni:mctaco",
        "Question well-formedness",
        ("Yes.", "No."),
        "A question that is free of any grammatical or logical errors should be labeled 'yes', otherwise 'no'. "
        "A question is grammatically correct if its words are in appropriate positions, and logically correct "
        "if its meaning makes sense.",
        "Is the question grammatical and sensible? Answer Yes or No.",
        "Label the question Yes when it has no grammar or logic errors, No when it has some.",
    ),
    _choice(
        "multirc_answerability",
        f"{NI}050_multirc_answerability",
        "ni:multirc",
        "Answerability",
        ("Yes.", "No."),
        "You are given a sentence and a question. If the information in the sentence is enough to answer the "
        "question, label Yes, otherwise No. Do not use facts other than those in the sentence.",
        "Can the question be answered from the sentence alone? Yes or No.",
        "Decide whether the given sentence holds enough information to answer the question: Yes or No.",
    ),
    TaskSpec(
        name="winogrande_blank",
        source="ni:winogrande",
        bigbench=f"{NI}033_winogrande_answer_generation",
        kind="exact",
        title="Fill the blank",
        description="You need to answer a given question containing a blank (_). Your answer must be one of "
        "the two objects mentioned in the question, for example 'trophy' or 'suitcase', and must not contain "
        "a word that is not present in the question.",
        paraphrases=(
            "Which of the two things named in the sentence fills the blank? Answer with that word.",
            "Complete the '_' with one of the two objects the sentence mentions; write only that object.",
        ),
    ),
    TaskSpec(
        name="question_typing",
        source="ni:misc",
        bigbench=f"{NI}046_miscellaenous_question_typing",
        kind="exact",
        title="Question-answer typing",
        description="Generate the type of the given question-answer pair, one of: Humans, Event, Entity, "
        "Facility, Location, Law, Organization, Date, Time, Money, Quantity, Description, Abbreviation. For "
        "example (Question: When was the Dormition church destroyed?, Answer: 1922) is of type Date.",
        paraphrases=(
            "Classify what kind of thing the answer is (Humans, Location, Date, Quantity, Entity, ...).",
            "Label the question-answer pair with its answer type, such as Humans, Event, Entity or Date.",
        ),
    ),
]


def _exact(name, path, source, title, description, p1, p2, heldout=True, template="{input}"):
    return TaskSpec(
        name=name,
        source=source,
        bigbench=path,
        kind="exact",
        title=title,
        description=description,
        paraphrases=(p1, p2),
        heldout=heldout,
        template=template,
    )


UNNATURAL = "unnatural_in_context_learning/"
HELDOUT_EXACT = [
    _exact(
        "letters_identity",
        f"{UNNATURAL}identity",
        "bigbench:unnatural_in_context_learning",
        "Repeat letters",
        "You are given five letters separated by commas. Reply with exactly the same letters in the same "
        "order, in the same comma-separated format.",
        "Copy the comma-separated list of letters unchanged.",
        "Echo the input: write the same five letters, same order, separated by commas.",
    ),
    _exact(
        "letters_reverse",
        f"{UNNATURAL}reverse_natural_content",
        "bigbench:unnatural_in_context_learning",
        "Reverse letters",
        "You are given the letters of a five-letter word separated by commas. Reply with the same letters in "
        "reverse order, still separated by commas.",
        "Reverse the order of the comma-separated letters.",
        "Write the letters backwards, last letter first, keeping the commas between them.",
    ),
    _exact(
        "date_reformat",
        f"{UNNATURAL}dates",
        "bigbench:unnatural_in_context_learning",
        "Date reformatting",
        "You are given a date written as YYYY-MM-DD. Rewrite it as !MM!DD!YYYY!, that is month, day and year "
        "each enclosed by exclamation marks.",
        "Convert the ISO date YYYY-MM-DD into the format !MM!DD!YYYY!.",
        "Reformat the date: put month, then day, then year, separated and surrounded by '!'.",
    ),
    _exact(
        "minus_means_plus",
        f"{UNNATURAL}unnatural_addition_2_digit",
        "bigbench:unnatural_in_context_learning",
        "Swapped operator",
        "Each line shows two two-digit numbers joined by a minus sign, but here the minus sign means "
        "addition: reply with the sum of the two numbers, in digits.",
        "Treat '-' as '+': add the two numbers and write the result.",
        "In this notation 'A - B =' asks for A plus B. Give that sum only.",
    ),
    _exact(
        "unit_addition",
        "unit_conversion/unit_addition_same",
        "bigbench:unit_conversion",
        "Adding quantities",
        "Each question adds or subtracts two quantities given in the same unit (minutes, kilometres, torrs, "
        "...). Reply with the resulting number only, without the unit.",
        "Add or subtract the two measurements that share a unit; answer with the number alone.",
        "Compute the total or difference of the two same-unit amounts and give just the number.",
    ),
    _exact(
        "overlapping_word",
        f"{NI}039_qasc_find_overlapping_words",
        "ni:qasc",
        "Overlapping word",
        "Generate an overlapping word between the given two sentences. The words do not have to match "
        "exactly ('survival' and 'survive' overlap). Little words like 'the' or 'of' do not count: give a "
        "significant word that is not a stop word.",
        "Name a content word that appears in both sentences.",
        "Find a meaningful word the two sentences share and write it.",
    ),
    _exact(
        "fact_answer",
        f"{NI}041_qasc_answer_generation",
        "ni:qasc",
        "Answer from a fact",
        "Write a correct answer to the given question based on its associated fact. The answer must be "
        "contained in the fact: do not introduce any word that the fact does not mention.",
        "Answer the question with words taken from the fact given before it.",
        "Use the stated fact to answer the question; copy the answer from the fact.",
    ),
    _exact(
        "unscramble",
        "word_unscrambling",
        "bigbench:word_unscrambling",
        "Unscramble a word",
        "You are given an English word whose letters have been shuffled. Reply with the original English "
        "word, using exactly the same letters.",
        "Rearrange the scrambled letters into the English word they spell.",
        "The letters of a common word are in the wrong order: write the word.",
    ),
    _exact(
        "periodic_elements",
        "periodic_elements/subtask_1",
        "bigbench:periodic_elements",
        "Periodic table neighbours",
        "Each question names a chemical element and asks for the element next to it in the periodic table "
        "(one more proton, or just to the right or left). Reply with that element's name in lower case.",
        "Name the element adjacent to the given one in the periodic table, as asked.",
        "Chemistry: which element comes just after (or beside) the named one? Give its name.",
    ),
]


def catalog() -> list[TaskSpec]:
    """Every task: the training tasks, the held-out ones, and the unseen list-function concepts."""
    lists = [list_task(c, f) for c, f in LIST_CONCEPTS.items()]
    lists += [list_task(c, f, unseen=True) for c, f in LIST_UNSEEN_CONCEPTS.items()]
    return lists + ARITHMETIC + MODIFIED_ARITHMETIC + LINGUISTIC + CHOICE + NI_TASKS + HELDOUT_EXACT


def prompt_of(spec: TaskSpec, example_input: str) -> str:
    text = example_input.strip()
    if spec.last_line:
        text = text.splitlines()[-1].strip()
    return spec.template.format(input=re.sub(r"[ \t]+\n", "\n", text))
