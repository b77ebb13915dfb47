"""Every text the agent sends to the LLM, and the examples the semantic router learns from.

Kept in one file so the wording can be tuned (and benchmarked with ``bench/routing.py``)
without touching the graph.
"""

from __future__ import annotations

ROUTER_SYSTEM = """You are the router of Taller, a deep-learning workshop assistant. Read the user's \
message (English or Spanish) and choose the ONE tool that does what the user asks, or "none" when \
no tool is needed: greetings, thanks, small talk, general questions about deep learning or about Taller.

Tools:
{catalog}
- none: no tool.

Examples:
"train the autoencoder for 3 epochs" -> train_model
"entrena el traductor" -> train_model
"hola, ¿qué tal?" -> none
"what is a convolution?" -> none
"¿cuántos clientes hay en Brasil?" -> query_database
"which tables does the sales database have" -> describe_database
"traduce: the cat sleeps" -> translate
"is pet.jpg a cat or a dog" -> classify_pet
"how old is the person in me.png" -> analyze_face
"add https://youtu.be/abc123def45" -> add_video
"what does the video say about dropout" -> ask_video

Reply with JSON only: {{"tool": "<name>"}}."""

ROUTER_ARGS_SYSTEM = """Fill in the arguments of the tool `{tool}` ({description}) from the user's \
message. Copy text arguments exactly as the user wrote them; never invent file paths or numbers. \
Reply with JSON only."""

ROUTER_AFTER_TOOL = """Tools already called for this request, with their results:
{results}
If the request is fully handled, choose "none". Otherwise choose the next tool."""

CHAT_SYSTEM = """You are Taller, a friendly local assistant for a deep-learning workshop. \
Answer in the user's language (English or Spanish), briefly and accurately. You can train and \
run these models when asked: a cats-vs-dogs MLP, an MNIST autoencoder, RNN/LSTM/GRU memory and \
forecasting, a bidirectional LSTM that restores punctuation, an English-to-Spanish translator, \
face emotion and age, questions and summaries of YouTube videos, questions to SQL databases, \
a VAE and a pix2pix GAN."""

ANSWER_SYSTEM = """You are Taller. A tool has just run for the user's request. Tell the user the \
result in their language (English or Spanish) in one to three sentences, using only the facts in \
the tool result below. Do not invent numbers. If the result has an error, say what went wrong \
and what the user can do. Do not mention JSON.

Tool: {tool}
Result: {result}"""

CONFIRM_MESSAGE = {
    "train_model": "Train {model} for {epochs}? This runs in the background and can take a while.",
}

# One line per tool for the router prompt: what it does and its arguments.
TOOL_CATALOG: dict[str, str] = {
    "train_model": 'train a model. args: {"model": one of dense_classifier|autoencoder|rnn|birnn|seq2seq|vae|pix2pix, "epochs": optional int}',
    "list_models": "list trained models and training runs with their metrics. args: {}",
    "classify_pet": 'say if a photo shows a cat or a dog. args: {"image_path": str}',
    "generate_images": 'generate images with autoencoder|vae|pix2pix. args: {"model": str, "count": optional int, "image_path": optional str}',
    "forecast": 'predict the next values of a number series. args: {"values": [numbers] or a CSV path, "steps": optional int}',
    "punctuate": 'add punctuation and capitals to text. args: {"text": str}',
    "translate": 'translate English text into Spanish. args: {"text": str, "beam_size": optional int}',
    "analyze_face": 'emotion and age of the faces in a photo. args: {"image_path": str}',
    "add_video": 'add a YouTube video or transcript file to the knowledge base. args: {"url_or_path": str}',
    "ask_video": 'answer a question about added videos. args: {"question": str, "video": optional str}',
    "summarize_video": 'summarise an added video. args: {"video": optional str}',
    "query_database": 'answer a question about data in a database (sales, customers, invoices, tracks, artists). args: {"question": str, "database": optional str}',
    "describe_database": 'describe the tables of a database. args: {"database": optional str}',
}

# Examples for the semantic pre-router (MiniLM nearest neighbours). "none" = chit-chat and general
# deep-learning questions. Kept separate from bench/routing.py's test set on purpose.
ROUTER_EXAMPLES: dict[str, list[str]] = {
    "train_model": [
        "train the autoencoder", "train the cats vs dogs classifier for 5 epochs",
        "entrena el autoencoder", "entrena el traductor", "start training the VAE",
        "fit the pix2pix GAN", "entrena la red bidireccional", "train the seq2seq translation model",
        "entrena el modelo rnn durante 3 épocas", "can you train the dense classifier",
    ],
    "list_models": [
        "list my models", "which models have been trained", "show training runs",
        "qué modelos tengo entrenados", "muestra los entrenamientos", "how is the training going",
        "what's the status of my runs",
    ],
    "classify_pet": [
        "is this a cat or a dog photo.jpg", "classify this pet picture", "¿es un gato o un perro? foto.png",
        "tell me if ~/pics/pet.jpg is a dog", "clasifica esta mascota",
    ],
    "generate_images": [
        "generate 8 samples with the vae", "show me autoencoder reconstructions", "genera imágenes con el vae",
        "run pix2pix on this label map", "create new digits", "reconstruye dígitos con el autoencoder",
    ],
    "forecast": [
        "forecast the next 5 values of 1, 2, 3, 4", "predict what comes next: 10 12 14 16",
        "pronostica los siguientes valores de esta serie", "predice los próximos 3 valores: 5, 7, 9",
        "forecast sales.csv for 10 steps",
    ],
    "punctuate": [
        "add punctuation to: hola como estas", "punctuate this text", "restore capitals and punctuation",
        "puntúa este texto: donde esta la biblioteca", "fix the punctuation of where are you going",
    ],
    "translate": [
        "translate 'I like cats' to Spanish", "how do you say good morning in Spanish",
        "traduce al español: the house is big", "translate this: where is the station",
        "traduce 'we are going to the beach'",
    ],
    "analyze_face": [
        "what's this face's emotion and age photo.jpg", "analyze the faces in group.png",
        "¿qué emoción tiene esta cara? foto.jpg", "how old does the person in me.jpg look",
        "detecta emociones en esta imagen", "is she happy in portrait.png",
    ],
    "add_video": [
        "add this video https://youtu.be/dQw4w9WgXcQ", "index the transcript talk.vtt",
        "añade este vídeo https://www.youtube.com/watch?v=abc123def45", "load the subtitles lecture.srt",
    ],
    "ask_video": [
        "what does the video say about attention", "in the video, when do they talk about dropout",
        "¿qué dice el vídeo sobre las redes neuronales?", "according to the lecture, what is backpropagation",
        "ask the video who the speaker thanks",
        "what did the speaker say about regularization", "in the talk, which examples are given",
        "¿qué explica el ponente sobre los transformers?", "does the lecture mention batch size",
        "según el vídeo, ¿cuándo se inventó el perceptrón?",
    ],
    "summarize_video": [
        "summarize this video", "give me a summary of the lecture", "resume el vídeo",
        "haz un resumen del vídeo", "what are the main points of the talk",
    ],
    "query_database": [
        "query the sales DB: top 5 customers by total", "how many invoices are there",
        "which country buys the most music", "¿cuántos clientes hay en Brasil?",
        "consulta la base de datos de ventas: artistas con más álbumes", "total sales per year",
        "list the 10 longest tracks", "which employee sold the most",
    ],
    "describe_database": [
        "describe the database", "what tables are in the sales db", "describe la base de datos",
        "show me the schema", "¿qué tablas tiene la base de datos?",
    ],
    "none": [
        "hello", "hola", "thanks!", "gracias", "what is a neural network", "¿qué es una red neuronal?",
        "explain backpropagation", "what's the difference between LSTM and GRU", "who are you",
        "¿qué puedes hacer?", "what is overfitting", "explica el descenso de gradiente", "good morning",
        "what is dropout", "how does attention work in transformers", "tell me a joke",
        "what is batch normalization", "explain how pooling works", "¿qué es una capa densa?",
        "what are embeddings?", "¿para qué sirve la tasa de aprendizaje?", "help", "ayuda",
        "what can Taller do for me", "how many layers should my network have",
        "explícame qué es una época", "why do we use ReLU", "good night",
    ],
}
