"""Build the three SQLite databases of the text-to-SQL benchmark: ``university``, ``hr`` and ``library``.

The benchmark's questions (``bench/data/sql_questions.jsonl``) are asked against these databases. They
are built here rather than downloaded so that no model has seen them: the schemas, names and rows are
invented for this benchmark (the Chinook music-store database, which small models have memorised, is
not used). Everything is deterministic: the standard library's ``sqlite3`` and one ``random.Random(seed)``
per database, names drawn from fixed lists, no clock and no set iteration (whose order changes between
runs), so two builds give the same rows and byte-identical files. The gold answers depend on that, so
**changing anything here changes the answers**; run ``check_questions.py`` after any change.

    .venv/bin/python bench/data/sql/build_databases.py [OUT_DIR]

OUT_DIR defaults to ``bench/data/sql/build/`` (ignored by git). It writes ``university.db``, ``hr.db`` and
``library.db``, replacing files of those names.

What each database holds (the schemas are in the ``*_SCHEMA`` strings below):

* ``university`` (7 tables): departments, instructors, courses, prerequisites (a course-to-course
  linking table), students (with an advisor), course offerings per term, and enrollments (student ×
  offering, with a grade).
* ``hr`` (6 tables): departments, employees (with a manager, a self-reference), yearly salary history,
  projects, assignments (employee × project, with a role and weekly hours) and leave requests.
* ``library`` (9 tables): branches, genres (with a parent genre), authors, titles, title_authors (a
  many-to-many linking table), copies of titles held by branches, members, loans of copies and
  member reviews of titles.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import sys
import unicodedata
from pathlib import Path
from random import Random

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "build"

# --------------------------------------------------------------------------------------------------
# Shared name pools. Mixed Spanish, Latin American and other names, because the questions are asked in
# English and Spanish and the users of such databases would be.
# --------------------------------------------------------------------------------------------------

FIRST_NAMES = [
    "Lucía", "Mateo", "Sofía", "Hugo", "Martina", "Leo", "Valentina", "Pablo", "Camila", "Daniel",
    "Julia", "Álvaro", "Paula", "Diego", "Elena", "Adrián", "Carmen", "Javier", "Sara", "Marcos",
    "Noa", "Iker", "Irene", "Bruno", "Claudia", "Gonzalo", "Ximena", "Santiago", "Renata", "Emiliano",
    "Fernanda", "Joaquín", "Abril", "Tomás", "Guadalupe", "Benjamín", "Mariana", "Thiago", "Daniela",
    "Sebastián", "Olivia", "James", "Emma", "Noah", "Ava", "Liam", "Grace", "Ethan", "Chloe", "Oscar",
    "Hannah", "Felix", "Amara", "Kenji", "Yuki", "Wei", "Mei", "Arjun", "Priya", "Omar", "Leila",
    "Youssef", "Ines", "Lars", "Greta", "Marco", "Giulia", "Chiara", "Pierre", "Camille", "Nadia",
    "Rafael", "Beatriz", "Rodrigo", "Catalina", "Andrés", "Lorena", "Esteban", "Miriam", "Nicolás",
]

LAST_NAMES = [
    "García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández", "Ruiz", "Díaz", "Moreno",
    "Muñoz", "Álvarez", "Romero", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Serrano",
    "Molina", "Castro", "Ortega", "Delgado", "Morales", "Herrera", "Medina", "Castillo", "Vargas",
    "Rojas", "Mendoza", "Guerrero", "Cruz", "Flores", "Reyes", "Aguilar", "Salazar", "Cortés", "Ibarra",
    "Quispe", "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Walker", "Clarke", "Murphy", "Kelly",
    "Nakamura", "Tanaka", "Chen", "Wang", "Patel", "Sharma", "Haddad", "Benali", "Rossi", "Bianchi",
    "Dubois", "Lefèvre", "Schmidt", "Weber", "Nilsson", "Okafor", "Adeyemi", "Silva", "Costa",
    "Pereira", "Iglesias", "Carrasco", "Soto", "Vidal", "Campos", "Fuentes", "Arias", "Peña", "Lozano",
]


def unique_people(rng: Random, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (first, last) pairs, so a question asking for names never meets two people
    with the same name (the answer would list the name twice or once, depending on DISTINCT)."""
    seen: set[tuple[str, str]] = set()
    people: list[tuple[str, str]] = []
    while len(people) < count:
        pair = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        if pair not in seen:
            seen.add(pair)
            people.append(pair)
    return people


def ascii_fold(text: str) -> str:
    """Plain ASCII for mailbox names, as mail systems want: 'Sofía Núñez' -> 'Sofia Nunez'."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def iso(day: dt.date) -> str:
    return day.isoformat()


def random_day(rng: Random, start: dt.date, end: dt.date) -> dt.date:
    """A day between start and end, both included."""
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def weighted(rng: Random, options: list[tuple[object, float]]):
    values = [value for value, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(values, weights=weights, k=1)[0]


def create(path: Path, schema: str) -> sqlite3.Connection:
    """A fresh database at ``path`` with ``schema`` applied and foreign keys enforced while filling it,
    so a row that breaks a declared key fails the build instead of shipping."""
    if path.exists():
        path.unlink()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA foreign_keys = ON")
    connection.executescript(schema)
    return connection


def insert(connection: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    marks = ", ".join("?" * len(rows[0]))
    connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def finish(connection: sqlite3.Connection) -> None:
    """Commit, check every foreign key once more, and compact the file."""
    connection.commit()
    broken = connection.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise SystemExit(f"foreign key violations: {broken[:5]}")
    connection.execute("VACUUM")
    connection.close()


# ==================================================================================================
# university
# ==================================================================================================

UNIVERSITY_SCHEMA = """
CREATE TABLE departments (
    dept_no     TEXT PRIMARY KEY,          -- short code, e.g. 'CSC'
    dept_name   TEXT NOT NULL UNIQUE,
    building    TEXT NOT NULL,
    budget      INTEGER NOT NULL,          -- yearly budget in euros
    phone       TEXT                       -- NULL when the department has no public line
);
CREATE TABLE instructors (
    instr_id    INTEGER PRIMARY KEY,
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    dept_no     TEXT NOT NULL REFERENCES departments(dept_no),
    title       TEXT NOT NULL,             -- 'Lecturer', 'Assistant Professor', 'Associate Professor', 'Professor'
    hired_on    TEXT NOT NULL,             -- ISO date
    office      TEXT,                      -- NULL for staff without an office
    salary      INTEGER NOT NULL,
    FOREIGN KEY (dept_no) REFERENCES departments(dept_no)
);
CREATE TABLE courses (
    crs_code    TEXT PRIMARY KEY,          -- e.g. 'CSC340'
    crs_title   TEXT NOT NULL UNIQUE,
    dept_no     TEXT NOT NULL,
    credits     INTEGER NOT NULL,          -- ECTS credits
    lvl         TEXT NOT NULL,             -- 'UG' undergraduate, 'PG' postgraduate (master's)
    FOREIGN KEY (dept_no) REFERENCES departments(dept_no)
);
CREATE TABLE prerequisites (
    crs_code      TEXT NOT NULL,           -- the course
    requires_code TEXT NOT NULL,           -- a course that must be passed before it
    PRIMARY KEY (crs_code, requires_code),
    FOREIGN KEY (crs_code) REFERENCES courses(crs_code),
    FOREIGN KEY (requires_code) REFERENCES courses(crs_code)
);
CREATE TABLE students (
    stu_id      INTEGER PRIMARY KEY,
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    major       TEXT,                      -- dept_no of the major; NULL while undeclared
    entry_year  INTEGER NOT NULL,
    status      TEXT NOT NULL,             -- 'active', 'on_leave', 'graduated', 'withdrawn'
    country     TEXT NOT NULL,             -- ISO 3166 alpha-2 code, e.g. 'ES', 'MX'
    dob         TEXT NOT NULL,             -- date of birth, ISO
    advisor     INTEGER,                   -- instr_id; NULL when none assigned
    FOREIGN KEY (major) REFERENCES departments(dept_no),
    FOREIGN KEY (advisor) REFERENCES instructors(instr_id)
);
CREATE TABLE offerings (
    offering_id INTEGER PRIMARY KEY,
    crs_code    TEXT NOT NULL,
    term        TEXT NOT NULL,             -- e.g. '2023-FA' (fall), '2024-SP' (spring)
    instr_id    INTEGER NOT NULL,
    room        TEXT,                      -- NULL for online offerings
    max_seats   INTEGER NOT NULL,
    UNIQUE (crs_code, term),
    FOREIGN KEY (crs_code) REFERENCES courses(crs_code),
    FOREIGN KEY (instr_id) REFERENCES instructors(instr_id)
);
CREATE TABLE enrollments (
    stu_id      INTEGER NOT NULL,
    offering_id INTEGER NOT NULL,
    enrolled_on TEXT NOT NULL,             -- ISO date
    grade       TEXT,                      -- 'A'..'D' pass, 'F' fail; NULL while the term is running
    PRIMARY KEY (stu_id, offering_id),
    FOREIGN KEY (stu_id) REFERENCES students(stu_id),
    FOREIGN KEY (offering_id) REFERENCES offerings(offering_id)
);
"""

DEPARTMENTS = [
    # dept_no, name, building, budget, phone
    ("CSC", "Computer Science", "Turing Hall", 2_410_000, "+34 915 550 101"),
    ("MTH", "Mathematics", "Noether Building", 1_380_000, "+34 915 550 102"),
    ("PHY", "Physics", "Meitner Hall", 1_960_000, "+34 915 550 103"),
    ("ECO", "Economics", "Ostrom House", 1_120_000, "+34 915 550 104"),
    ("HIS", "History", "Old Cloister", 640_000, None),
    ("BIO", "Biology", "Franklin Labs", 2_050_000, "+34 915 550 106"),
    ("LIN", "Linguistics", "Sapir House", 515_000, None),
]

# crs_code, title, credits, level. Codes start with the department code.
COURSES = [
    ("CSC101", "Introduction to Programming", 6, "UG"), ("CSC102", "Data Structures", 6, "UG"),
    ("CSC210", "Algorithms", 6, "UG"), ("CSC240", "Computer Architecture", 6, "UG"),
    ("CSC310", "Operating Systems", 6, "UG"), ("CSC340", "Database Systems", 6, "UG"),
    ("CSC360", "Computer Networks", 6, "UG"), ("CSC420", "Machine Learning", 6, "UG"),
    ("CSC510", "Advanced Databases", 9, "PG"), ("CSC530", "Deep Learning", 9, "PG"),
    ("MTH101", "Calculus I", 6, "UG"), ("MTH102", "Calculus II", 6, "UG"),
    ("MTH150", "Linear Algebra", 6, "UG"), ("MTH220", "Introduction to Statistics", 6, "UG"),
    ("MTH230", "Probability Theory", 6, "UG"), ("MTH310", "Numerical Methods", 6, "UG"),
    ("MTH330", "Discrete Mathematics", 6, "UG"), ("MTH520", "Bayesian Statistics", 9, "PG"),
    ("PHY101", "Mechanics", 6, "UG"), ("PHY102", "Electromagnetism", 6, "UG"),
    ("PHY210", "Thermodynamics", 6, "UG"), ("PHY250", "Quantum Physics", 6, "UG"),
    ("PHY320", "Optics", 4, "UG"), ("PHY510", "Particle Physics", 9, "PG"),
    ("ECO101", "Principles of Microeconomics", 6, "UG"), ("ECO102", "Principles of Macroeconomics", 6, "UG"),
    ("ECO210", "Econometrics", 6, "UG"), ("ECO230", "Game Theory", 4, "UG"),
    ("ECO310", "Development Economics", 4, "UG"), ("ECO340", "Public Finance", 4, "UG"),
    ("ECO520", "Advanced Econometrics", 9, "PG"),
    ("HIS101", "World History", 6, "UG"), ("HIS120", "History of Latin America", 6, "UG"),
    ("HIS210", "Medieval Europe", 4, "UG"), ("HIS230", "The Industrial Revolution", 4, "UG"),
    ("HIS310", "History of Science", 3, "UG"), ("HIS510", "Historiography", 9, "PG"),
    ("BIO101", "Cell Biology", 6, "UG"), ("BIO110", "Ecology", 6, "UG"),
    ("BIO201", "Genetics", 6, "UG"), ("BIO220", "Microbiology", 6, "UG"),
    ("BIO310", "Bioinformatics", 6, "UG"), ("BIO330", "Neuroscience", 4, "UG"),
    ("BIO520", "Molecular Evolution", 9, "PG"),
    ("LIN101", "Introduction to Linguistics", 6, "UG"), ("LIN201", "Phonetics", 4, "UG"),
    ("LIN210", "Syntax", 6, "UG"), ("LIN220", "Semantics", 4, "UG"),
    ("LIN310", "Computational Linguistics", 6, "UG"), ("LIN320", "Sociolinguistics", 3, "UG"),
    ("LIN510", "Language Acquisition", 9, "PG"),
]

# (course, a course it requires). Mostly chains inside a department, a few across departments.
PREREQUISITES = [
    ("CSC102", "CSC101"), ("CSC210", "CSC102"), ("CSC210", "MTH330"), ("CSC240", "CSC101"),
    ("CSC310", "CSC240"), ("CSC310", "CSC210"), ("CSC340", "CSC102"), ("CSC360", "CSC240"),
    ("CSC420", "CSC210"), ("CSC420", "MTH150"), ("CSC420", "MTH220"), ("CSC510", "CSC340"),
    ("CSC530", "CSC420"),
    ("MTH102", "MTH101"), ("MTH230", "MTH101"), ("MTH310", "MTH102"), ("MTH310", "MTH150"),
    ("MTH520", "MTH230"), ("MTH520", "MTH220"),
    ("PHY102", "PHY101"), ("PHY102", "MTH101"), ("PHY210", "PHY101"), ("PHY250", "PHY102"),
    ("PHY250", "MTH150"), ("PHY320", "PHY102"), ("PHY510", "PHY250"),
    ("ECO210", "MTH220"), ("ECO210", "ECO101"), ("ECO230", "ECO101"), ("ECO310", "ECO102"),
    ("ECO340", "ECO102"), ("ECO520", "ECO210"),
    ("HIS210", "HIS101"), ("HIS230", "HIS101"), ("HIS310", "HIS101"), ("HIS510", "HIS210"),
    ("BIO201", "BIO101"), ("BIO220", "BIO101"), ("BIO310", "BIO201"), ("BIO310", "CSC101"),
    ("BIO330", "BIO101"), ("BIO520", "BIO201"),
    ("LIN201", "LIN101"), ("LIN210", "LIN101"), ("LIN220", "LIN210"), ("LIN310", "LIN210"),
    ("LIN310", "CSC101"), ("LIN320", "LIN101"), ("LIN510", "LIN210"),
]

TERMS = ["2022-FA", "2023-SP", "2023-FA", "2024-SP", "2024-FA"]
CURRENT_TERM = "2024-FA"  # still running: its enrollments have no grade yet
NEVER_OFFERED = {"PHY510"}  # a catalogue course nobody has taught lately (a "never" question)

TITLE_SALARY = {"Lecturer": 36_000, "Assistant Professor": 44_000, "Associate Professor": 55_000,
                "Professor": 68_000}


def term_start(term: str) -> dt.date:
    year, season = int(term[:4]), term[5:]
    return dt.date(year, 9, 9) if season == "FA" else dt.date(year, 2, 5)


def academic_year(term: str) -> int:
    """The year an academic year starts in: fall 2023 and spring 2024 both belong to 2023."""
    year, season = int(term[:4]), term[5:]
    return year if season == "FA" else year - 1


def build_university(path: Path) -> None:
    rng = Random(20240611)
    db = create(path, UNIVERSITY_SCHEMA)
    insert(db, "departments", DEPARTMENTS)
    dept_codes = [row[0] for row in DEPARTMENTS]

    # Instructors: 5 to 9 per department, a mix of ranks; salaries follow the rank with some spread.
    # (48 names are drawn and 47 used; the draw is kept as it is because the rows depend on it.)
    people = unique_people(rng, 48)
    instructors = []
    by_dept: dict[str, list[int]] = {code: [] for code in dept_codes}
    sizes = {"CSC": 9, "MTH": 7, "PHY": 7, "ECO": 6, "HIS": 5, "BIO": 8, "LIN": 5}
    next_id = 101
    for code in dept_codes:
        for _ in range(sizes[code]):
            first, last = people[next_id - 101]
            title = weighted(rng, [("Lecturer", 3), ("Assistant Professor", 3), ("Associate Professor", 3),
                                   ("Professor", 2)])
            hired = random_day(rng, dt.date(1994, 1, 1), dt.date(2023, 12, 31))
            office = None if (title == "Lecturer" and rng.random() < 0.6) else \
                f"{code[0]}-{rng.randint(1, 4)}{rng.randint(0, 3)}{rng.randint(1, 9)}"
            salary = TITLE_SALARY[title] + rng.randint(0, 40) * 250 + (2024 - hired.year) * 180
            instructors.append((next_id, first, last, code, title, iso(hired), office, salary))
            by_dept[code].append(next_id)
            next_id += 1
    insert(db, "instructors", instructors)

    # A course belongs to the department its code starts with.
    insert(db, "courses", [(code, title, code[:3], credits, level) for code, title, credits, level in COURSES])
    insert(db, "prerequisites", PREREQUISITES)

    # Students: larger majors in Computer Science and Biology, some undeclared (NULL major).
    majors = [("CSC", 26), ("MTH", 11), ("PHY", 9), ("ECO", 15), ("HIS", 7), ("BIO", 17), ("LIN", 6), (None, 9)]
    countries = [("ES", 52), ("MX", 9), ("AR", 6), ("CO", 6), ("CL", 3), ("PE", 3), ("US", 4), ("DE", 3),
                 ("FR", 3), ("IT", 3), ("CN", 3), ("IN", 2), ("MA", 3)]
    students = []
    for index, (first, last) in enumerate(unique_people(rng, 430)):
        stu_id = 23001 + index
        major = weighted(rng, majors)
        entry = weighted(rng, [(2019, 12), (2020, 15), (2021, 17), (2022, 19), (2023, 19), (2024, 18)])
        if entry <= 2020:
            status = weighted(rng, [("graduated", 80), ("withdrawn", 12), ("on_leave", 3), ("active", 5)])
        else:
            status = weighted(rng, [("active", 86), ("on_leave", 7), ("withdrawn", 7)])
        if major is None and status == "graduated":
            status = "withdrawn"  # nobody graduates without a major
        country = weighted(rng, countries)
        dob = random_day(rng, dt.date(entry - 22, 1, 1), dt.date(entry - 18, 8, 31))
        advisor = None
        if major is not None and rng.random() < 0.85:
            advisor = rng.choice(by_dept[major])
        students.append((stu_id, first, last, major, entry, status, country, iso(dob), advisor))
    insert(db, "students", students)

    # Offerings: each course runs in most terms (postgraduate ones less often), taught by someone from
    # its department, now and then by a colleague from another department.
    offerings = []
    offering_id = 5001
    for term in TERMS:
        for code, _title, _credits, level in COURSES:
            if code in NEVER_OFFERED:
                continue
            chance = 0.45 if level == "PG" else 0.7
            if code in {"CSC101", "MTH101", "MTH220", "ECO101", "BIO101", "LIN101", "HIS101", "CSC340"}:
                chance = 1.0  # core courses run every term
            if rng.random() >= chance:
                continue
            dept = code[:3]
            pool = by_dept[dept] if rng.random() < 0.92 else by_dept[rng.choice(dept_codes)]
            instr = rng.choice(pool)
            room = None  # online
            if rng.random() >= 0.12:
                room = f"{rng.choice('ABCDE')}{rng.randint(1, 3)}{rng.randint(10, 40)}"
            seats = rng.choice([25, 30, 40, 40, 60, 60, 80, 120])
            offerings.append((offering_id, code, term, instr, room, seats))
            offering_id += 1
    insert(db, "offerings", offerings)

    # Enrollments: each student takes 3 to 5 offerings in each term they were around, mostly from
    # their major, skipping full offerings and courses they already took.
    by_term: dict[str, list[tuple[int, str, int]]] = {term: [] for term in TERMS}
    for off_id, code, term, _instr, _room, seats in offerings:
        by_term[term].append((off_id, code, seats))
    level_of = {code: level for code, _t, _c, level in COURSES}
    taken_count: dict[int, int] = {}
    enrollments = []
    for stu_id, _f, _l, major, entry, status, _c, _dob, _adv in students:
        present = [term for term in TERMS if academic_year(term) >= entry]
        if status == "graduated":
            last_year = entry + 3
            present = [term for term in present if academic_year(term) <= last_year]
        elif status == "withdrawn":
            present = present[:rng.randint(1, 2)]
        elif status == "on_leave":
            present = [term for term in present if term != CURRENT_TERM][:max(1, len(present) - 1)]
        done: set[str] = set()
        for term in present:
            want = rng.randint(3, 5)
            candidates = [o for o in by_term[term] if o[1] not in done]
            home = [o for o in candidates if major is not None and o[1][:3] == major]
            rng.shuffle(home)
            rng.shuffle(candidates)
            # Postgraduate courses go to students in their fourth year or later.
            senior = academic_year(term) - entry >= 3
            chosen = []
            for off_id, code, seats in home + candidates:
                if len(chosen) >= want:
                    break
                if code in done or (level_of[code] == "PG" and not senior):
                    continue
                if home and len(chosen) < want - 1 and code[:3] != major and rng.random() < 0.7:
                    continue  # keep most of the load in the major
                if taken_count.get(off_id, 0) >= seats:
                    continue
                chosen.append(off_id)
                done.add(code)
                taken_count[off_id] = taken_count.get(off_id, 0) + 1
            for off_id in chosen:
                enrolled_on = term_start(term) - dt.timedelta(days=rng.randint(3, 40))
                grade = None if term == CURRENT_TERM else weighted(
                    rng, [("A", 17), ("B", 31), ("C", 29), ("D", 11), ("F", 12)])
                enrollments.append((stu_id, off_id, iso(enrolled_on), grade))
    insert(db, "enrollments", enrollments)
    finish(db)


# ==================================================================================================
# hr
# ==================================================================================================

HR_SCHEMA = """
CREATE TABLE dept (
    dept_id      INTEGER PRIMARY KEY,
    dept_name    TEXT NOT NULL UNIQUE,
    city         TEXT NOT NULL,
    cost_center  TEXT NOT NULL UNIQUE
);
CREATE TABLE employees (
    emp_id       INTEGER PRIMARY KEY,
    first_nm     TEXT NOT NULL,
    last_nm      TEXT NOT NULL,
    email        TEXT,                     -- NULL for staff without a company mailbox
    birth_dt     TEXT NOT NULL,            -- ISO date
    hire_dt      TEXT NOT NULL,            -- ISO date
    dept_id      INTEGER NOT NULL,
    job_title    TEXT NOT NULL,
    mgr_id       INTEGER,                  -- emp_id of the manager; NULL for the chief executive
    status       TEXT NOT NULL,            -- 'active', 'on_leave', 'terminated', 'retired'
    country      TEXT NOT NULL,            -- country of the work contract, in English
    FOREIGN KEY (dept_id) REFERENCES dept(dept_id),
    FOREIGN KEY (mgr_id) REFERENCES employees(emp_id)
);
CREATE TABLE salary_history (
    emp_id       INTEGER NOT NULL,
    yr           INTEGER NOT NULL,         -- calendar year
    base_salary  INTEGER NOT NULL,         -- yearly, euros
    bonus        INTEGER,                  -- yearly bonus, euros; NULL when none was paid
    PRIMARY KEY (emp_id, yr),
    FOREIGN KEY (emp_id) REFERENCES employees(emp_id)
);
CREATE TABLE projects (
    proj_code    TEXT PRIMARY KEY,         -- e.g. 'PRJ-2104'
    proj_name    TEXT NOT NULL UNIQUE,
    owner_dept   INTEGER NOT NULL,
    start_date   TEXT NOT NULL,            -- ISO date
    end_date     TEXT,                     -- NULL while the project is ongoing
    budget_eur   INTEGER NOT NULL,
    priority     TEXT NOT NULL,            -- 'low', 'medium', 'high', 'critical'
    FOREIGN KEY (owner_dept) REFERENCES dept(dept_id)
);
CREATE TABLE assignments (
    emp_id       INTEGER NOT NULL,
    proj_code    TEXT NOT NULL,
    role         TEXT NOT NULL,            -- 'lead', 'developer', 'analyst', 'tester', 'consultant'
    hours_week   INTEGER NOT NULL,         -- hours per week on the project
    assigned_on  TEXT NOT NULL,            -- ISO date
    PRIMARY KEY (emp_id, proj_code),
    FOREIGN KEY (emp_id) REFERENCES employees(emp_id),
    FOREIGN KEY (proj_code) REFERENCES projects(proj_code)
);
CREATE TABLE leave_requests (
    req_id       INTEGER PRIMARY KEY,
    emp_id       INTEGER NOT NULL,
    leave_type   TEXT NOT NULL,            -- 'vacation', 'sick', 'parental', 'unpaid', 'training'
    start_dt     TEXT NOT NULL,            -- ISO date, first day off
    end_dt       TEXT NOT NULL,            -- ISO date, last day off
    decision     TEXT NOT NULL,            -- 'approved', 'rejected', 'pending'
    FOREIGN KEY (emp_id) REFERENCES employees(emp_id)
);
"""

HR_DEPTS = [
    # dept_id, name, city, cost center, head count target, job titles (first one is the head's)
    (10, "Engineering", "Madrid", "CC-110", 62,
     ["VP of Engineering", "Engineering Manager", "Senior Software Engineer", "Software Engineer",
      "QA Engineer", "DevOps Engineer"]),
    (20, "Sales", "Barcelona", "CC-120", 34,
     ["Sales Director", "Sales Manager", "Account Executive", "Sales Representative"]),
    (30, "Marketing", "Madrid", "CC-130", 18,
     ["Marketing Director", "Marketing Manager", "Content Strategist", "Marketing Analyst"]),
    (40, "Finance", "Madrid", "CC-140", 16,
     ["Chief Financial Officer", "Finance Manager", "Accountant", "Financial Analyst"]),
    (50, "Human Resources", "Sevilla", "CC-150", 11,
     ["HR Director", "HR Manager", "HR Business Partner", "Recruiter"]),
    (60, "Customer Support", "Ciudad de México", "CC-160", 38,
     ["Head of Support", "Support Team Lead", "Support Specialist", "Support Agent"]),
    (70, "Research", "Valencia", "CC-170", 22,
     ["Research Director", "Research Lead", "Research Scientist", "Data Scientist"]),
    (80, "Logistics", "Bogotá", "CC-180", 19,
     ["Logistics Director", "Operations Manager", "Logistics Coordinator", "Warehouse Planner"]),
    (90, "Internal Audit", "Madrid", "CC-190", 0, []),  # newly created: nobody in it yet
]

# Where contracts are signed, per department city, with the odd remote contract elsewhere.
CITY_COUNTRY = {"Madrid": "Spain", "Barcelona": "Spain", "Sevilla": "Spain", "Valencia": "Spain",
                "Ciudad de México": "Mexico", "Bogotá": "Colombia"}
REMOTE_COUNTRIES = [("Portugal", 3), ("Argentina", 3), ("United States", 2), ("Mexico", 2), ("Colombia", 1),
                    ("Chile", 2), ("Spain", 2)]

# Project name and the department that owns it.
PROJECTS = [
    ("Atlas Migration", 10), ("Orion CRM Rollout", 20), ("Nimbus Data Lake", 10), ("Helios Billing", 40),
    ("Quetzal Mobile App", 10), ("Boreal Warehouse Automation", 80), ("Cóndor Route Planner", 80),
    ("Vega Customer Portal", 60), ("Lyra Payroll Upgrade", 50), ("Andes Supplier Onboarding", 80),
    ("Pulsar Fraud Detection", 70), ("Sirius Brand Refresh", 30), ("Tierra Carbon Report", 40),
    ("Delta Support Chatbot", 60), ("Kestrel Security Audit", 10), ("Marea Pricing Engine", 20),
    ("Ceiba Learning Platform", 50), ("Nova Recruitment Pipeline", 50), ("Olmo Expense Tracker", 40),
    ("Zenit Sales Forecast", 20), ("Aurora Knowledge Base", 60), ("Faro Compliance Review", 40),
    ("Ibis Inventory Sync", 80), ("Ámbar Market Study", 30), ("Cierzo Cloud Costs", 10),
    ("Jacarandá Partner API", 10), ("Kappa Churn Model", 70), ("Tucán Field Service App", 60),
]


def build_hr(path: Path) -> None:
    rng = Random(7311)
    db = create(path, HR_SCHEMA)
    insert(db, "dept", [(d[0], d[1], d[2], d[3]) for d in HR_DEPTS])

    total = sum(d[4] for d in HR_DEPTS) + 1
    people = unique_people(rng, total)
    employees = []
    emp_dept: dict[int, int] = {}
    next_id = 1000

    def add(first_last, dept_id, title, mgr, hired_from, hired_to, city, manages=False):
        nonlocal next_id
        first, last = first_last
        emp_id = next_id
        next_id += 1
        hired = random_day(rng, hired_from, hired_to)
        if manages:  # people with reports are older and still with the company
            birth = random_day(rng, dt.date(1960, 1, 1), dt.date(1984, 12, 31))
        else:
            birth = random_day(rng, dt.date(1958, 1, 1), dt.date(2001, 12, 31))
        if hired.year - birth.year < 21:
            birth = dt.date(hired.year - 21 - rng.randint(0, 6), birth.month, min(birth.day, 28))
        # Retirements only among older staff, terminations among anyone; someone who still has
        # reports has not left (their team would have been moved to another manager).
        roll = rng.random()
        if manages:
            status = "on_leave" if roll < 0.05 else "active"
        elif birth.year < 1962 and roll < 0.5:
            status = "retired"
        elif roll < 0.07:
            status = "terminated"
        elif roll < 0.13:
            status = "on_leave"
        else:
            status = "active"
        if mgr is None:
            status = "active"
        email = None if rng.random() < 0.06 else f"{ascii_fold(f'{first}.{last}').lower()}@norteandino.example"
        country = CITY_COUNTRY[city] if rng.random() < 0.88 else weighted(rng, REMOTE_COUNTRIES)
        employees.append((emp_id, first, last, email, iso(birth), iso(hired), dept_id, title, mgr, status,
                          country))
        emp_dept[emp_id] = dept_id
        return emp_id

    # The chief executive sits in Finance's budget line but is nobody's report.
    people_iter = iter(people)
    ceo = add(next(people_iter), 40, "Chief Executive Officer", None, dt.date(2008, 3, 1), dt.date(2008, 3, 31),
              "Madrid", manages=True)
    for dept_id, _name, city, _cc, size, titles in HR_DEPTS:
        if size == 0:
            continue
        head = add(next(people_iter), dept_id, titles[0], ceo, dt.date(2008, 6, 1), dt.date(2015, 12, 31), city,
                   manages=True)
        # Managers (the second title) report to the head; everyone else reports to a manager.
        n_managers = max(1, size // 9)
        managers = [add(next(people_iter), dept_id, titles[1], head, dt.date(2010, 1, 1), dt.date(2020, 12, 31),
                        city, manages=True) for _ in range(n_managers)]
        for _ in range(size - 1 - n_managers):
            title = rng.choice(titles[2:])
            add(next(people_iter), dept_id, title, rng.choice(managers), dt.date(2011, 1, 1),
                dt.date(2024, 10, 31), city)
    insert(db, "employees", employees)

    # Salary history 2019-2024 for the years each person was on the payroll. Leavers stop in a year
    # between their hiring and 2024.
    base_by_title_word = [("Chief", 150_000), ("VP", 120_000), ("Director", 95_000), ("Head", 85_000),
                          ("Manager", 62_000), ("Lead", 60_000), ("Senior", 52_000), ("Scientist", 50_000),
                          ("Engineer", 42_000), ("Partner", 44_000), ("Analyst", 38_000), ("Accountant", 36_000),
                          ("Executive", 35_000), ("Strategist", 37_000), ("Coordinator", 31_000),
                          ("Planner", 30_000), ("Recruiter", 32_000), ("Specialist", 29_000),
                          ("Representative", 27_000), ("Agent", 24_000)]
    salaries = []
    for emp_id, _f, _l, _e, _b, hired, _d, title, _m, status, country in employees:
        base = next(amount for word, amount in base_by_title_word if word in title)
        if country in ("Mexico", "Colombia", "Argentina", "Chile"):
            base = int(base * 0.55)
        base = base + rng.randint(-20, 20) * 200
        first_year = max(2019, int(hired[:4]))
        last_year = 2024 if status in ("active", "on_leave") else rng.randint(first_year, 2024)
        for year in range(first_year, last_year + 1):
            bonus = None if rng.random() < 0.3 else int(base * rng.choice([0.03, 0.05, 0.08, 0.1, 0.12]))
            salaries.append((emp_id, year, base, bonus))
            base = int(base * (1 + rng.choice([0, 0.015, 0.02, 0.03, 0.03, 0.04, 0.06])) / 100) * 100
    insert(db, "salary_history", salaries)

    # Projects: some finished, some ongoing (NULL end date).
    projects = []
    for index, (name, owner) in enumerate(PROJECTS):
        code = f"PRJ-{2101 + index * 3}"
        start = random_day(rng, dt.date(2019, 1, 7), dt.date(2024, 9, 30))
        end = None
        if start < dt.date(2024, 3, 1) and rng.random() < 0.6:
            end = start + dt.timedelta(days=rng.randint(90, 700))
            if end > dt.date(2024, 11, 29):
                end = None  # would finish after the data was taken: still ongoing
        budget = rng.randint(12, 240) * 5_000
        priority = weighted(rng, [("low", 2), ("medium", 4), ("high", 3), ("critical", 1)])
        projects.append((code, name, owner, iso(start), iso(end) if end else None, budget, priority))
    insert(db, "projects", projects)

    # Assignments: one lead per project, from the owning department; the rest of the team mostly from
    # that department, some from elsewhere. Only people already hired when the project started; people
    # who have left since can appear on finished projects only. Some employees are on no project at all.
    hired_on = {row[0]: dt.date.fromisoformat(row[5]) for row in employees}
    still_here = {row[0] for row in employees if row[9] in ("active", "on_leave")}
    staff = [row for row in employees if row[8] is not None]  # everyone but the chief executive
    assignments = []
    for code, _name, owner, start, end, _budget, _priority in projects:
        start_day = dt.date.fromisoformat(start)
        eligible = [row[0] for row in staff if hired_on[row[0]] <= start_day and (end or row[0] in still_here)]
        home = [emp_id for emp_id in eligible if emp_dept[emp_id] == owner]
        team = [rng.choice(home)]
        size = min(rng.randint(3, 14), len(eligible))
        while len(team) < size:
            candidate = rng.choice(home if rng.random() < 0.65 else eligible)
            if candidate not in team:
                team.append(candidate)
        for position, emp_id in enumerate(team):
            if position == 0:
                role = "lead"
            elif emp_dept[emp_id] == 10:
                role = weighted(rng, [("developer", 6), ("tester", 2), ("analyst", 1)])
            else:
                role = weighted(rng, [("analyst", 4), ("consultant", 2), ("developer", 1), ("tester", 1)])
            if role == "lead":
                hours = rng.choice([16, 20, 24, 30])
            else:
                hours = rng.choice([4, 6, 8, 10, 12, 16, 20, 20, 24, 30, 40])
            assigned = start_day + dt.timedelta(days=rng.randint(0, 60))
            assignments.append((emp_id, code, role, hours, iso(assigned)))
    insert(db, "assignments", assignments)

    # Leave requests over 2023-2024.
    requests = []
    people_on_payroll = [row[0] for row in employees if row[9] != "terminated"]
    for req_id in range(1, 361):
        emp_id = rng.choice(people_on_payroll)
        kind = weighted(rng, [("vacation", 55), ("sick", 20), ("parental", 5), ("unpaid", 6), ("training", 14)])
        start = random_day(rng, dt.date(2023, 1, 2), dt.date(2024, 12, 20))
        length = {"vacation": rng.randint(1, 15), "sick": rng.randint(1, 8), "parental": rng.randint(28, 112),
                  "unpaid": rng.randint(5, 30), "training": rng.randint(1, 4)}[kind]
        end = start + dt.timedelta(days=length - 1)
        if start >= dt.date(2024, 11, 15):
            decision = weighted(rng, [("pending", 7), ("approved", 3)])
        else:
            decision = weighted(rng, [("approved", 86), ("rejected", 14)])
        requests.append((req_id, emp_id, kind, iso(start), iso(end), decision))
    insert(db, "leave_requests", requests)
    finish(db)


# ==================================================================================================
# library
# ==================================================================================================

LIBRARY_SCHEMA = """
CREATE TABLE branches (
    branch_id    INTEGER PRIMARY KEY,
    branch_name  TEXT NOT NULL UNIQUE,
    city         TEXT NOT NULL,
    opened_year  INTEGER NOT NULL
);
CREATE TABLE genres (
    genre_id     INTEGER PRIMARY KEY,
    label        TEXT NOT NULL UNIQUE,
    parent_id    INTEGER,                  -- broader genre; NULL at the top ('Fiction', 'Non-fiction')
    FOREIGN KEY (parent_id) REFERENCES genres(genre_id)
);
CREATE TABLE authors (
    author_id    INTEGER PRIMARY KEY,
    full_name    TEXT NOT NULL UNIQUE,
    birth_year   INTEGER,                  -- NULL when unknown
    nationality  TEXT NOT NULL             -- adjective in English, e.g. 'Argentine', 'British'
);
CREATE TABLE titles (
    isbn         TEXT PRIMARY KEY,         -- ISBN-13 as text
    title        TEXT NOT NULL UNIQUE,
    pub_year     INTEGER NOT NULL,
    genre_id     INTEGER NOT NULL,
    publisher    TEXT NOT NULL,
    pages        INTEGER,                  -- NULL when the record is incomplete
    lang_code    TEXT NOT NULL,            -- ISO 639-1: 'es', 'en', 'fr', 'pt', 'ca', 'it'
    FOREIGN KEY (genre_id) REFERENCES genres(genre_id)
);
CREATE TABLE title_authors (
    isbn         TEXT NOT NULL,
    author_id    INTEGER NOT NULL,
    author_pos   INTEGER NOT NULL,         -- 1 for the first-named author
    PRIMARY KEY (isbn, author_id),
    FOREIGN KEY (isbn) REFERENCES titles(isbn),
    FOREIGN KEY (author_id) REFERENCES authors(author_id)
);
CREATE TABLE copies (
    copy_id      INTEGER PRIMARY KEY,
    isbn         TEXT NOT NULL,
    branch_id    INTEGER NOT NULL,
    acquired_on  TEXT NOT NULL,            -- ISO date
    cond         TEXT NOT NULL,            -- 'new', 'good', 'worn', 'damaged'
    FOREIGN KEY (isbn) REFERENCES titles(isbn),
    FOREIGN KEY (branch_id) REFERENCES branches(branch_id)
);
CREATE TABLE members (
    member_no    TEXT PRIMARY KEY,         -- card number, e.g. 'M-004217'
    first_name   TEXT NOT NULL,
    surname      TEXT NOT NULL,
    joined_on    TEXT NOT NULL,            -- ISO date
    tier         TEXT NOT NULL,            -- 'standard', 'student', 'senior'
    home_branch  INTEGER NOT NULL,
    email        TEXT,                     -- NULL when not given
    FOREIGN KEY (home_branch) REFERENCES branches(branch_id)
);
CREATE TABLE loans (
    loan_id      INTEGER PRIMARY KEY,
    copy_id      INTEGER NOT NULL,
    member_no    TEXT NOT NULL,
    loaned_on    TEXT NOT NULL,            -- ISO date
    due_on       TEXT NOT NULL,            -- ISO date, 21 days after the loan
    returned_on  TEXT,                     -- ISO date; NULL while the copy is still out
    FOREIGN KEY (copy_id) REFERENCES copies(copy_id),
    FOREIGN KEY (member_no) REFERENCES members(member_no)
);
CREATE TABLE reviews (
    member_no    TEXT NOT NULL,
    isbn         TEXT NOT NULL,
    stars        INTEGER NOT NULL,         -- 1 to 5
    reviewed_on  TEXT NOT NULL,            -- ISO date
    comment      TEXT,                     -- NULL for a rating without text
    PRIMARY KEY (member_no, isbn),
    FOREIGN KEY (member_no) REFERENCES members(member_no),
    FOREIGN KEY (isbn) REFERENCES titles(isbn)
);
"""

BRANCHES = [
    (1, "Central Library", "Madrid", 1968),
    (2, "Lavapiés Branch", "Madrid", 1994),
    (3, "Gràcia Branch", "Barcelona", 2001),
    (4, "Triana Reading Room", "Sevilla", 2009),
    (5, "Ruzafa Branch", "Valencia", 2016),
]

GENRES = [
    (1, "Fiction", None), (2, "Non-fiction", None),
    (3, "Fantasy", 1), (4, "Science Fiction", 1), (5, "Crime", 1), (6, "Romance", 1), (7, "Poetry", 1),
    (8, "Children's", 1), (9, "Literary Fiction", 1),
    (10, "History", 2), (11, "Biography", 2), (12, "Popular Science", 2), (13, "Cookery", 2),
    (14, "Travel", 2), (15, "Philosophy", 2),
]

NATIONALITIES = [("Spanish", 30), ("Argentine", 10), ("Mexican", 10), ("Colombian", 6), ("Chilean", 5),
                 ("Peruvian", 3), ("British", 10), ("American", 10), ("Irish", 3), ("French", 5),
                 ("Japanese", 3), ("Nigerian", 2), ("Italian", 3), ("Brazilian", 3), ("Portuguese", 2)]

# Which nationalities most often write in a language (the catalogue holds originals more than translations).
WRITES_IN = {"es": {"Spanish", "Argentine", "Mexican", "Colombian", "Chilean", "Peruvian"}, "ca": {"Spanish"},
             "en": {"British", "American", "Irish", "Nigerian"}, "fr": {"French"}, "it": {"Italian"},
             "pt": {"Brazilian", "Portuguese"}}

PUBLISHERS = ["Editorial Alba", "Northgate Press", "Sello Candil", "Harbor & Finch", "Ediciones Marea",
              "Quarry Books", "Editorial Sur", "Lumen Norte", "Blackthorn House", "Éditions du Pont"]

# Title templates per language. Nouns and adjectives are combined into invented titles.
TITLE_PARTS = {
    "es": (["La casa de {n}", "El último {m}", "Crónica del {m}", "Los días de {n}", "Una {f} en {p}",
            "El {m} de {p}", "Memorias de un {m}", "La {f} dormida", "Cartas a {n}", "Bajo el cielo de {p}"],
           {"m": ["invierno", "faro", "viajero", "río", "jardín", "cartógrafo", "relojero", "silencio",
                  "puerto", "bosque"],
            "f": ["noche", "isla", "ciudad", "sombra", "frontera", "tormenta", "biblioteca", "herida", "marea",
                  "casa"],
            "n": ["Amparo", "Tomás", "Inés", "Aurelio", "Rosario", "Benito", "Leonor", "Matilde", "Ramiro"],
            "p": ["Valparaíso", "Oaxaca", "Cádiz", "Rosario", "Cartagena", "Cuzco", "Zamora", "Tandil",
                  "Mérida"]}),
    "en": (["The {a} {o}", "A {o} in {p}", "The {o} of {p}", "Letters from {n}", "The Last {o}",
            "{n}'s {o}", "Beyond the {o}", "The {a} Year", "Notes on a {a} {o}", "Winter in {p}"],
           {"a": ["Silent", "Broken", "Hidden", "Northern", "Glass", "Paper", "Burning", "Quiet", "Salt",
                  "Iron"],
            "o": ["Harbour", "Orchard", "Cartographer", "Lighthouse", "Garden", "Archive", "Bridge",
                  "Engine", "Kingdom", "Island"],
            "n": ["Agnes", "Bartholomew", "Clara", "Desmond", "Evelyn", "Florence", "Gideon", "Harriet"],
            "p": ["Lisbon", "Galway", "Kyoto", "Lagos", "Tangier", "Oslo", "Trieste", "Halifax"]}),
    "fr": (["Le {m} de {p}", "La {f} d'hiver", "Les jardins de {p}"],
           {"m": ["silence", "voyageur", "phare", "jardin"], "f": ["nuit", "maison", "rivière", "lettre"],
            "p": ["Lyon", "Brest", "Arles", "Nantes", "Dijon", "Rouen"]}),
    "pt": (["O {m} de {p}", "A {f} do mar"],
           {"m": ["farol", "jardim", "viajante"], "f": ["casa", "noite", "ilha"],
            "p": ["Porto", "Coimbra", "Braga", "Recife"]}),
    "ca": (["La {f} de {p}", "El {m} del port"],
           {"f": ["nit", "casa", "illa"], "m": ["far", "jardí", "viatger"], "p": ["Girona", "Reus", "Vic"]}),
    "it": (["Il {m} di {p}", "La {f} sul lago"],
           {"m": ["faro", "giardino", "viaggiatore"], "f": ["casa", "notte", "isola"],
            "p": ["Trieste", "Bari", "Lucca"]}),
}

# Some non-fiction titles read as such, so a question about "cookery books" has sensible titles.
NONFICTION_TITLES = {
    10: ["A Short History of the Silk Roads", "Historia mínima del Virreinato", "The Iron Century",
         "Los puertos del imperio", "Empires of Salt", "La guerra de los mapas", "The Medieval Harbour Towns",
         "Crónica de las dos orillas", "Rivers That Made Europe", "El siglo de la plata"],
    11: ["A Life in Ink", "Retrato de una cartógrafa", "The Quiet Engineer", "Vida de un relojero",
         "Notes from a Surgeon", "La maestra de Tandil", "Letters of a Lighthouse Keeper", "The Reluctant Mayor"],
    12: ["How Rivers Think", "El universo en un grano de sal", "The Hidden Life of Fungi", "Cerebros y mareas",
         "A Brief Tour of Particles", "La química de la cocina", "The Clockwork Cell", "Why Bridges Stand",
         "Océanos invisibles"],
    13: ["Cocina de mercado", "The Salt and Citrus Kitchen", "Recetas de la abuela Amparo", "Bread Without Hurry",
         "Tapas para todo el año", "One Pot, Five Evenings", "Dulces de convento", "The Andean Table"],
    14: ["A Winter Along the Danube", "Por los caminos del Inca", "Islands of the North Atlantic",
         "Viaje lento por Galicia", "The Rail to Tangier", "Cuaderno de Patagonia"],
    15: ["On Patience", "Ética para días grises", "The Examined Commute", "Pensar despacio, vivir deprisa",
         "Small Questions, Large Answers", "Diálogos sobre el tiempo"],
}
SPANISH_NONFICTION = {
    "Historia mínima del Virreinato", "Los puertos del imperio", "La guerra de los mapas",
    "Crónica de las dos orillas",
    "El siglo de la plata", "Retrato de una cartógrafa", "Vida de un relojero", "La maestra de Tandil",
    "El universo en un grano de sal", "Cerebros y mareas", "La química de la cocina", "Océanos invisibles",
    "Cocina de mercado", "Recetas de la abuela Amparo", "Tapas para todo el año", "Dulces de convento",
    "Por los caminos del Inca", "Viaje lento por Galicia", "Cuaderno de Patagonia", "Ética para días grises",
    "Pensar despacio, vivir deprisa", "Diálogos sobre el tiempo",
}


def isbn13(rng: Random, prefix: str) -> str:
    """A syntactically valid ISBN-13 (the check digit is right), so the column looks real."""
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(12 - len(prefix)))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def build_library(path: Path) -> None:
    rng = Random(1893)
    db = create(path, LIBRARY_SCHEMA)
    insert(db, "branches", BRANCHES)
    insert(db, "genres", GENRES)

    # Authors: a few write a lot (a long-tailed catalogue), a handful have nothing in the catalogue.
    authors = []
    for index, (first, last) in enumerate(unique_people(rng, 150)):
        birth = None if rng.random() < 0.1 else rng.randint(1898, 1996)
        nationality = weighted(rng, NATIONALITIES)
        authors.append((301 + index, f"{first} {last}", birth, nationality))
    insert(db, "authors", authors)
    author_ids = [row[0] for row in authors]
    # Long-tailed but capped, so no single author fills the shelves.
    productivity = [min(rng.paretovariate(1.5), 6.0) for _ in author_ids]
    nationality_of = {row[0]: row[3] for row in authors}
    no_books = set(author_ids[-6:])  # listed (e.g. from an event) but with nothing in the catalogue

    # Titles: fiction from templates in several languages, non-fiction from fixed lists.
    titles = []
    seen_titles: set[str] = set()
    seen_isbns: set[str] = set()

    def new_isbn(lang: str) -> str:
        while True:
            code = isbn13(rng, "97884" if lang in ("es", "ca") else "97819" if lang == "en" else "97828")
            if code not in seen_isbns:
                seen_isbns.add(code)
                return code

    def pub_year() -> int:
        return min(2024, int(2024 - rng.expovariate(1 / 14)))

    for genre_id, names in NONFICTION_TITLES.items():
        for name in names:
            lang = "es" if name in SPANISH_NONFICTION else "en"
            seen_titles.add(name)
            pages = None if rng.random() < 0.05 else rng.randint(140, 620)
            titles.append((new_isbn(lang), name, max(1950, pub_year()), genre_id, rng.choice(PUBLISHERS), pages,
                           lang))
    fiction_genres = [(3, 12), (4, 9), (5, 16), (6, 10), (7, 5), (8, 9), (9, 18)]
    languages = [("es", 55), ("en", 30), ("fr", 5), ("pt", 3), ("ca", 4), ("it", 3)]
    while len(titles) < 320:
        lang = weighted(rng, languages)
        templates, words = TITLE_PARTS[lang]
        template = rng.choice(templates)
        name = template.format(**{key: rng.choice(values) for key, values in words.items()})
        if lang == "en":
            name = re.sub(r"\b([Aa]) (?=[AEIOU])", r"\1n ", name)  # 'A Island' -> 'An Island'
        if name in seen_titles:
            continue
        seen_titles.add(name)
        genre_id = weighted(rng, fiction_genres)
        # Children's books (8) and poetry (7) are short; a few records lack a page count.
        if rng.random() < 0.05:
            pages = None
        elif genre_id == 8:
            pages = rng.randint(24, 64)
        elif genre_id == 7:
            pages = rng.randint(60, 140)
        else:
            pages = rng.randint(150, 880)
        titles.append((new_isbn(lang), name, max(1950, pub_year()), genre_id, rng.choice(PUBLISHERS), pages,
                       lang))
    insert(db, "titles", titles)

    # Who wrote what: 1 author mostly, sometimes 2 or 3; prolific authors more often, and authors who
    # write in the title's language much more often.
    links = []
    for isbn, *_rest, lang in titles:
        writers = [(a, w * (8 if nationality_of[a] in WRITES_IN[lang] else 1))
                   for a, w in zip(author_ids, productivity) if a not in no_books]
        count = weighted(rng, [(1, 85), (2, 12), (3, 3)])
        chosen: list[int] = []
        while len(chosen) < count:
            author = weighted(rng, writers)
            if author not in chosen:
                chosen.append(author)
        links.extend((isbn, author, pos) for pos, author in enumerate(chosen, start=1))
    insert(db, "title_authors", links)

    # Copies: most titles have 1 to 4 copies spread over branches; a few have none (lost or withdrawn).
    copies = []
    copy_id = 70001
    branch_weights = [(1, 35), (2, 15), (3, 22), (4, 14), (5, 14)]
    popularity: dict[str, float] = {}
    for isbn, _t, year, genre_id, _p, _pages, _lang in titles:
        popularity[isbn] = rng.paretovariate(1.6)
        if rng.random() < 0.05:
            continue
        for _ in range(weighted(rng, [(1, 40), (2, 35), (3, 17), (4, 8)])):
            acquired = random_day(rng, dt.date(max(year, 1995), 1, 1), dt.date(2024, 6, 30))
            if acquired < dt.date(year, 1, 1):
                acquired = dt.date(year, 6, 1)
            cond = weighted(rng, [("new", 18), ("good", 50), ("worn", 25), ("damaged", 7)])
            copies.append((copy_id, isbn, weighted(rng, branch_weights), iso(acquired), cond))
            copy_id += 1
    insert(db, "copies", copies)

    # Members, each attached to a home branch.
    members = []
    for index, (first, last) in enumerate(unique_people(rng, 460)):
        number = f"M-{4001 + index * 7:06d}"
        joined = random_day(rng, dt.date(2012, 1, 1), dt.date(2024, 10, 31))
        tier = weighted(rng, [("standard", 62), ("student", 24), ("senior", 14)])
        home = weighted(rng, branch_weights)
        email = None
        if rng.random() >= 0.18:
            email = f"{ascii_fold(first[0] + last).lower()}{rng.randint(1, 99)}@correo.example"
        members.append((number, first, last, iso(joined), tier, home, email))
    insert(db, "members", members)
    # Some members borrow far more than others, within reason.
    member_weights = [(m[0], min(rng.paretovariate(2.0), 5.0)) for m in members]
    home_of = {m[0]: m[5] for m in members}
    joined_of = {m[0]: dt.date.fromisoformat(m[3]) for m in members}

    # Loans: each copy's loans follow one another in time (a copy is never out twice at once). Borrowers
    # are mostly members of the copy's branch. The last loan of a copy may still be out (NULL return).
    loans = []
    loan_id = 1
    window_start, today = dt.date(2022, 1, 10), dt.date(2024, 12, 15)
    members_by_branch: dict[int, list[tuple[str, float]]] = {}
    for number, weight in member_weights:
        members_by_branch.setdefault(home_of[number], []).append((number, weight))
    for copy_id_, isbn, branch, acquired, cond in copies:
        day = max(window_start, dt.date.fromisoformat(acquired)) + dt.timedelta(days=rng.randint(0, 60))
        pace = 90 / popularity[isbn] + (60 if cond == "damaged" else 0)
        while True:
            day += dt.timedelta(days=int(rng.expovariate(1 / pace)) + 1)
            if day > today:
                break
            pool = members_by_branch[branch] if rng.random() < 0.8 else member_weights
            borrower = weighted(rng, pool)
            if joined_of[borrower] > day:
                continue
            due = day + dt.timedelta(days=21)
            length = int(rng.triangular(2, 35, 12))  # about a quarter come back after the due date
            returned = day + dt.timedelta(days=length)
            if returned > today or (day > dt.date(2024, 9, 1) and rng.random() < 0.08):
                loans.append((loan_id, copy_id_, borrower, iso(day), iso(due), None))
                loan_id += 1
                break  # still out: no later loan of this copy
            loans.append((loan_id, copy_id_, borrower, iso(day), iso(due), iso(returned)))
            loan_id += 1
            day = returned
    # Sorted by date so loan ids grow with time, as they would in a real system.
    loans.sort(key=lambda row: (row[3], row[1]))
    loans = [(index + 1, *row[1:]) for index, row in enumerate(loans)]
    insert(db, "loans", loans)

    # Reviews: a member reviews some of the titles they borrowed, after returning them.
    isbn_of_copy = {c[0]: c[1] for c in copies}
    quality = {isbn: rng.choice([2.4, 3.0, 3.4, 3.7, 4.0, 4.3]) for isbn, *_ in titles}
    reviews = []
    reviewed: set[tuple[str, str]] = set()
    comments = ["Lo recomiendo.", "Slow start, great ending.", "No me convenció.", "A classic for a reason.",
                "Demasiado largo.", "Perfect for the summer.", "Muy bien documentado.", "Not my cup of tea.",
                "Lo leí de un tirón.", "The translation is uneven."]
    for _lid, copy_id_, member, _loaned, _due, returned in loans:
        if returned is None or rng.random() > 0.22:
            continue
        isbn = isbn_of_copy[copy_id_]
        if (member, isbn) in reviewed:
            continue
        reviewed.add((member, isbn))
        stars = max(1, min(5, round(rng.gauss(quality[isbn], 0.9))))
        on = dt.date.fromisoformat(returned) + dt.timedelta(days=rng.randint(0, 20))
        comment = rng.choice(comments) if rng.random() < 0.55 else None
        reviews.append((member, isbn, stars, iso(min(on, today)), comment))
    insert(db, "reviews", reviews)
    finish(db)


BUILDERS = {"university": build_university, "hr": build_hr, "library": build_library}


def build_all(out_dir: Path) -> dict[str, Path]:
    """Build every database into ``out_dir``; returns name → path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, builder in BUILDERS.items():
        path = out_dir / f"{name}.db"
        builder(path)
        paths[name] = path
    return paths


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    for name, path in build_all(out_dir).items():
        with sqlite3.connect(path) as connection:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            counts = ", ".join(f"{t} {connection.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0]}"
                               for t in tables)
        print(f"{name}: {path}  ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
