"""Build ``demo/corpus/kx40-manual.pdf`` from the manual text below (deterministic output).

The Kestrel KX-40 and everything about it are fictional, written for the edgerag demo: an
operation and maintenance manual with the kind of specific facts (torques, intervals, part
numbers, alarm codes) that retrieval must find exactly. The other corpus files (Markdown
troubleshooting guide, HTML service bulletin, shift log) are hand-written next to the PDF.

Run: ``python demo/make_corpus.py`` (needs fpdf2). Same input, same bytes: the creation date
is fixed, and fpdf2 derives the file ID from the content.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

logger = logging.getLogger(__name__)

OUT = Path(__file__).resolve().parent / "corpus" / "kx40-manual.pdf"
TITLE = "Kestrel KX-40 Centrifugal Pump Skid - Operation and Maintenance Manual"
HEADER = "Kestrel KX-40 Pump Skid | O&M Manual KFS-OM-KX40 | Revision C (2025-11)"
CREATED = datetime(2025, 11, 20, 9, 0, tzinfo=UTC)

# A block is a paragraph (str) or a tuple: ("list", items), ("steps", items), ("note", text),
# ("table", widths, header, rows), ("sub", heading) or ("page",) to start a new page.
Block = Any

MANUAL: list[tuple[str, list[Block]]] = [
    (
        "1 About this manual",
        [
            "This manual covers the Kestrel KX-40 centrifugal pump skid, serial numbers KX40-2101 "
            "and later, built by Kestrel Fluid Systems. It is written for the operators, "
            "mechanical fitters and electricians who run and maintain the skid. Read the safety "
            "chapter before any work on the unit, and keep this manual with the skid.",
            "Revision C (November 2025) replaces Revision B. Changes: new alarm codes E-118 to "
            "E-120, revised grease quantities in section 9.2, a new spare parts table and a "
            "rewritten mechanical seal procedure (section 9.6). Service bulletins issued after "
            "this revision take precedence over the values printed here; check the bulletin "
            "register before using any torque value or interval.",
            "Conventions: pressures are gauge pressures in bar (bar g) unless stated otherwise. "
            "Torques are in newton metres (N·m) for lightly oiled threads. Operating hours are "
            "the hours counted by the SkidGuard controller (menu Service > Hours), not calendar "
            "time. Tag numbers such as PT-101 refer to the instrument list in chapter 3.",
        ],
    ),
    (
        "2 Safety",
        [
            "The KX-40 moves liquid at up to 16 bar and is driven by a 37 kW motor fed from a "
            "variable frequency drive. Stored electrical energy, pressurised liquid, hot surfaces "
            "and rotating parts can all cause serious injury. Only trained and authorised people "
            "may operate or service the skid.",
            ("sub", "2.1 Lockout before work"),
            (
                "steps",
                [
                    "Stop the pump from the HMI and wait until the shaft has stopped turning.",
                    "Open the main isolator Q1 on the skid panel and lock it with your personal "
                    "padlock. Attach a signed danger tag.",
                    "Wait at least 5 minutes: the drive's DC bus capacitors hold a dangerous "
                    "voltage "
                    "after isolation. Verify zero voltage at the motor terminals with a tested "
                    "meter.",
                    "Close and lock the suction valve V-01 and the discharge valve V-02. Close the "
                    "seal flush isolation valve V-05.",
                    "Open the casing drain V-03 and the vent V-04 and let the casing fall to 0 "
                    "bar. "
                    "Check PT-101 and PT-102 both read 0.0 bar before opening any joint.",
                    "If the pumped liquid is hot, let the casing cool below 50 °C.",
                ],
            ),
            ("sub", "2.2 Hazards and protective equipment"),
            (
                "list",
                [
                    "Rotating shaft and coupling: never run the pump with the coupling guard "
                    "removed. "
                    "The guard interlock ZS-111 stops the drive if the guard is opened (alarm "
                    "E-116).",
                    "Hot surfaces: the bearing housing can reach 80 °C in normal service and the "
                    "casing the temperature of the liquid.",
                    "Pressure: the casing is rated 16 bar. Never close the discharge valve fully "
                    "while "
                    "the pump runs for more than 30 seconds; the liquid heats up quickly.",
                    "Noise: sound pressure is 82 dB(A) at 1 m at rated speed. Wear hearing "
                    "protection "
                    "for longer work next to the skid.",
                    "Lifting: the complete skid weighs 1,240 kg. Lift only at the four marked "
                    "lifting "
                    "lugs with a spreader beam; never lift by the motor eyebolt or by the piping.",
                    "Minimum protective equipment: safety glasses, gloves, safety shoes. Add a "
                    "face "
                    "shield when opening a joint that has held liquid.",
                ],
            ),
            (
                "note",
                "WARNING: The drive can restart the pump automatically after a power dip "
                "when auto-restart is enabled (parameter P-21). Always isolate at Q1 before work.",
            ),
        ],
    ),
    (
        "3 Description",
        [
            "The KX-40 is a self-contained pumping unit for clean or slightly contaminated water, "
            "glycol mixtures and process liquids compatible with its materials. A single-stage "
            "end-suction centrifugal pump is coupled to a 4-pole motor through a spacer coupling. "
            "Pump, motor, suction strainer, valves, instruments and the SkidGuard controller are "
            "mounted on one welded steel base frame with an integral drip pan.",
            "The shaft is sealed by a single cartridge mechanical seal with silicon carbide "
            "against carbon faces and EPDM elastomers. The seal is flushed from the pump "
            "discharge through a 3.0 mm orifice into the seal chamber (API Plan 11). A pressure "
            "switch PS-107 watches the flush line. The pump bearings run in grease: a deep groove "
            "ball bearing 6309 C3 at the drive end (DE) and a matched pair of angular contact "
            "bearings 7309 BECBM at the non-drive end (NDE), which take the axial thrust.",
            "The SkidGuard controller reads all instruments, runs the start and stop sequences, "
            "raises alarms with E-codes (chapter 11) and commands the variable frequency drive "
            "over Modbus. The HMI is a 7-inch touch panel on the skid panel door.",
            ("sub", "3.1 Instrument list"),
            (
                "table",
                (22, 70, 98),
                ("Tag", "Instrument", "Purpose"),
                [
                    (
                        "PT-101",
                        "Suction pressure transmitter",
                        "Low suction / cavitation protection",
                    ),
                    ("PT-102", "Discharge pressure transmitter", "Pressure control, loss of prime"),
                    ("TT-103", "Pt100, DE bearing", "Bearing temperature alarm and trip"),
                    ("TT-104", "Pt100, NDE bearing", "Bearing temperature alarm and trip"),
                    ("VT-105", "Vibration transmitter, NDE housing", "Velocity, mm/s RMS"),
                    ("FT-106", "Magnetic flow meter, discharge", "Minimum flow and runout"),
                    ("PS-107", "Seal flush pressure switch", "Loss of seal flush"),
                    ("LS-108", "Drip pan level switch", "Seal leakage"),
                    ("TT-109", "PTC thermistors, motor winding", "Motor overtemperature"),
                    ("DPT-110", "Strainer differential pressure", "Blocked suction strainer"),
                    ("ZS-111", "Coupling guard interlock", "Stops drive when guard is open"),
                ],
            ),
        ],
    ),
    (
        "4 Technical specifications",
        [
            (
                "table",
                (80, 110),
                ("Item", "Value"),
                [
                    ("Pump type", "Single-stage end-suction centrifugal, back pull-out"),
                    ("Rated duty", "120 m³/h at 48 m head, 1480 rpm"),
                    ("Maximum flow (runout)", "160 m³/h"),
                    ("Minimum continuous flow", "25 m³/h"),
                    ("Shut-off head", "58 m"),
                    ("NPSH required at rated duty", "3.2 m"),
                    ("Impeller", "Closed, CF8M stainless steel, 285 mm trimmed diameter"),
                    ("Casing", "Ductile iron EN-GJS-400-15, rated 16 bar at 90 °C"),
                    ("Suction / discharge flanges", "DN125 / DN100, PN16"),
                    ("Liquid temperature", "-10 °C to +90 °C"),
                    ("Shaft seal", "Cartridge mechanical seal, SiC/carbon, EPDM, API Plan 11"),
                    ("Pump bearings", "DE 6309 C3; NDE 2 × 7309 BECBM back-to-back"),
                    ("Motor", "37 kW, 4-pole, 400 V 50 Hz, IE3, IP55, frame 225S"),
                    ("Motor bearings", "DE 6313 C3, NDE 6212 C3, regreasable"),
                    ("Drive", "Kestrel KD-7 VFD, 45 kW, 30-50 Hz operating range"),
                    ("Coupling", "Elastomeric spacer coupling, 140 mm spacer"),
                    ("Suction strainer", "Basket type, 3 mm perforation, DN125"),
                    ("Skid dimensions (L × W × H)", "2,150 × 900 × 1,100 mm"),
                    ("Skid weight, dry", "1,240 kg"),
                    ("Sound pressure at 1 m", "82 dB(A)"),
                    ("Ambient temperature", "+2 °C to +40 °C, indoors"),
                ],
            ),
        ],
    ),
    (
        "5 Installation and commissioning",
        [
            "Set the skid on a level concrete foundation at least 1.5 times the skid weight. "
            "Level the base frame to within 0.2 mm per metre using shims next to each anchor "
            "bolt, then tighten the M20 anchor bolts to 220 N·m. Grout the frame with non-"
            "shrink grout and let it cure for 48 hours before final alignment.",
            "Support all piping independently. The pump flanges must not carry pipe weight or "
            "thermal forces: with the flange bolts loose, the flange faces must line up within "
            "0.5 mm and the bolt holes must drop in without force. Pipe strain is the most "
            "common cause of early bearing and seal failure on new installations.",
            ("sub", "5.1 Shaft alignment"),
            "The coupling is pre-aligned at the factory, but transport and grouting move the "
            "motor. Re-align after grouting, after connecting the piping and again after the "
            "first 24 hours at operating temperature. Use a laser alignment tool or the reverse "
            "dial method.",
            (
                "table",
                (95, 95),
                ("Alignment check", "Tolerance at 1480 rpm"),
                [
                    ("Parallel offset", "0.05 mm maximum"),
                    ("Angular misalignment", "0.05 mm per 100 mm maximum"),
                    ("Spacer gap (hub to hub)", "140 ± 0.5 mm"),
                    ("Soft foot, any motor foot", "0.05 mm maximum"),
                ],
            ),
            ("sub", "5.2 Electrical connection"),
            "Connect the supply to Q1 with a cable sized for 80 A. The motor cable from the "
            "drive must be screened, with the screen bonded at both ends. Check motor rotation "
            "by jogging at 5 Hz with the coupling spacer removed: the motor must turn clockwise "
            "seen from the motor fan end, as shown by the arrow on the pump bearing housing.",
        ],
    ),
    (
        "6 Startup",
        [
            ("sub", "6.1 Checks before the first start"),
            (
                "list",
                [
                    "Coupling spacer fitted, alignment recorded, coupling guard closed (ZS-111 "
                    "made).",
                    "Pump bearings greased at the factory: do not add grease before the first "
                    "start.",
                    "Seal cartridge centering clips removed (they are yellow and must be stored).",
                    "Suction strainer basket fitted and cover bolted.",
                    "All instruments show plausible values on the HMI, no E-117 sensor faults.",
                ],
            ),
            ("sub", "6.2 Priming and first start"),
            (
                "steps",
                [
                    "Open the suction valve V-01 fully. The KX-40 is not self-priming: the suction "
                    "line and casing must be full of liquid.",
                    "Open the vent V-04 until liquid without air flows out, then close it.",
                    "Open the seal flush valve V-05.",
                    "Open the discharge valve V-02 about one quarter (about two turns).",
                    "Select LOCAL on the HMI and press START. The drive ramps to 30 Hz in 10 "
                    "seconds.",
                    "Within 30 seconds PT-102 must rise above 1.5 bar; if not, the controller "
                    "stops "
                    "the pump with E-103 (loss of prime). Vent again and retry.",
                    "Open V-02 slowly to the duty point, then select AUTO to hand control to the "
                    "pressure or flow set point.",
                    "Check for leaks, unusual noise and vibration. Record bearing temperatures "
                    "after "
                    "one hour; they should settle between 45 °C and 70 °C.",
                ],
            ),
            (
                "note",
                "CAUTION: Never start against a closed suction valve. The pump will run dry "
                "within seconds and the mechanical seal faces will be destroyed (E-111).",
            ),
            ("sub", "6.3 Normal start"),
            "In AUTO the controller starts the pump on demand. It checks the permissives first: "
            "no active trip, guard closed, suction pressure above 0.3 bar and fewer than 6 starts "
            "in the last hour. A blocked start shows the reason on the HMI status line.",
        ],
    ),
    (
        "7 Operation",
        [
            "Keep the pump inside its allowed operating range: between 25 m³/h and 160 m³/h, "
            "with suction pressure above 0.3 bar. Running below minimum flow heats the liquid "
            "in the casing and loads the bearings with radial force; running beyond runout "
            "causes cavitation. The controller alarms both (E-112 and E-113).",
            (
                "table",
                (70, 40, 40, 40),
                ("Monitored value", "Normal", "Alarm", "Trip"),
                [
                    ("Suction pressure PT-101", "> 0.8 bar", "< 0.5 bar", "< 0.3 bar"),
                    ("Discharge pressure PT-102", "4-6 bar", "> 14.5 bar", "> 15.5 bar"),
                    ("Bearing temperature TT-103/104", "45-70 °C", "> 85 °C", "> 95 °C"),
                    ("Vibration VT-105", "< 2.8 mm/s", "> 4.5 mm/s", "> 7.1 mm/s"),
                    ("Motor winding TT-109", "< 110 °C", "> 140 °C", "> 155 °C"),
                    ("Strainer dP DPT-110", "< 0.2 bar", "> 0.5 bar", "> 0.8 bar"),
                ],
            ),
            "Walk round the running skid once per shift. Listen for changes in noise, look for "
            "drips at the seal (a mechanical seal should show no visible leakage), feel the "
            "bearing housing with the back of the hand, and note pressures, flow, bearing "
            "temperatures and vibration in the shift log.",
            ("sub", "7.1 Duty and standby skids"),
            "Most plants install two KX-40 skids side by side, tagged for example P-2A and "
            "P-2B, with one SkidGuard acting as lead controller over the link cable. The lead "
            "controller swaps duty and standby every 168 operating hours so both pumps wear "
            "evenly, and starts the standby pump within 5 seconds when the duty pump trips. "
            "A manual changeover (HMI: Duty > Swap) is the normal way to take a pump out for "
            "strainer cleaning or seal work without stopping the process.",
            "The standby pump must be ready: valves V-01, V-02 and V-05 open, casing full and "
            "vented, no active trips, and selected AUTO. A standby pump left in LOCAL or with a "
            "closed suction valve is the most common reason a changeover fails at night.",
            ("sub", "7.2 Cold weather"),
            "The skid is built for indoor use. If the room can fall below +2 °C, keep the "
            "standby pump warm by circulation (set Duty > Exercise to run it 2 minutes every "
            "4 hours) or drain it. Frozen liquid in the casing cracks the ductile iron and "
            "destroys the seal faces. Glycol mixtures above 30 % raise the motor power at "
            "rated flow by about 6 %; check the motor current after changing the mixture.",
        ],
    ),
    (
        "8 Shutdown",
        [
            ("sub", "8.1 Normal stop"),
            "Press STOP on the HMI or remove the run demand in AUTO. The drive ramps down in "
            "15 seconds, which limits pressure surge in long discharge lines. Leave the valves "
            "open if the pump is a duty unit that will restart.",
            ("sub", "8.2 Emergency stop"),
            "The red mushroom button on the panel door removes power from the drive output "
            "immediately through the safe torque off input (alarm E-115). The pump coasts to a "
            "stop. Before reset, find and remove the reason for the emergency stop, then twist "
            "to release the button and acknowledge on the HMI.",
            ("sub", "8.3 Taking the skid out of service"),
            (
                "steps",
                [
                    "Stop the pump and isolate as in section 2.1.",
                    "Close V-01, V-02 and V-05. Drain the casing through V-03.",
                    "For more than one month out of service: fill the casing with clean water or "
                    "preservative, or drain completely and dry it in frost risk.",
                    "Turn the shaft by hand five full turns every two weeks so the bearings and "
                    "seal "
                    "faces do not stick. Mark the final shaft position with chalk so the next "
                    "person "
                    "can see it was done.",
                    "After more than six months out of service, replace the bearing grease "
                    "completely "
                    "before restarting (section 9.2).",
                ],
            ),
        ],
    ),
    (
        "9 Maintenance",
        [
            ("page",),
            ("sub", "9.1 Maintenance schedule"),
            "Intervals are operating hours from the SkidGuard counter, or calendar time, "
            "whichever comes first. Skids in dusty, humid or hot locations (above 35 °C ambient) "
            "should use half the listed interval for greasing and coupling inspection.",
            (
                "table",
                (95, 45, 50),
                ("Task", "Interval", "Section"),
                [
                    ("Walk-round check, log readings", "Every shift", "7"),
                    ("Check suction strainer dP, clean basket", "Monthly or dP > 0.5 bar", "9.4"),
                    ("Regrease pump bearings", "2,000 h", "9.2"),
                    ("Regrease motor bearings", "4,000 h", "9.2"),
                    ("Inspect coupling elastomer, check alignment", "4,000 h", "9.3"),
                    ("Replace pump bearing grease completely", "8,000 h or 12 months", "9.2"),
                    ("Test trips: PS-107, LS-108, E-stop, guard interlock", "6 months", "11"),
                    ("Replace coupling elastomer element", "16,000 h", "9.3"),
                    ("Replace mechanical seal cartridge", "On condition (leakage)", "9.6"),
                    ("Replace pump bearings", "32,000 h or on condition", "9.5"),
                    ("Replace controller battery", "5 years or E-120", "11"),
                ],
            ),
            ("sub", "9.2 Lubrication"),
            "The pump bearings and the motor bearings are lubricated with grease. Use Kestrel "
            "KL-2 grease (part KX40-GR-KL2): lithium complex thickener, NLGI grade 2, mineral "
            "base oil ISO VG 100, dropping point above 250 °C. An equivalent grease may be used, "
            "but never mix a polyurea grease with a lithium complex grease: the mixture softens "
            "and runs out of the bearing.",
            "Regreasing (topping up) is done with the pump running, so the new grease is spread "
            "by the rolling elements. Wipe the grease nipple clean, pump the quantity from the "
            "table slowly with a calibrated grease gun (one stroke of the standard Kestrel gun "
            "delivers 1.5 g), and open the relief plug under the housing for 30 minutes so "
            "surplus grease can escape. A rise of 10-15 °C in bearing temperature for an hour "
            "after greasing is normal.",
            (
                "table",
                (70, 40, 40, 40),
                ("Bearing", "Regrease", "Quantity", "Full refill"),
                [
                    ("Pump DE, 6309 C3", "2,000 h", "15 g", "45 g"),
                    ("Pump NDE, 2 × 7309 BECBM", "2,000 h", "20 g", "60 g"),
                    ("Motor DE, 6313 C3", "4,000 h", "25 g", "per motor plate"),
                    ("Motor NDE, 6212 C3", "4,000 h", "15 g", "per motor plate"),
                ],
            ),
            "Complete grease replacement of the pump bearings is due every 8,000 operating "
            "hours or every 12 months, whichever comes first, and after any bearing temperature "
            "trip (E-104 or E-105). Isolate the skid, remove the bearing housing covers, "
            "remove all old grease from the bearings and housing with a plastic spatula and "
            "lint-free cloth, check the old grease for metal particles or water, then pack each "
            "bearing with the full refill quantity. The refill fills about 40 % of the free "
            "space; more grease makes the bearing run hot. Reset the lubrication counter in "
            "menu Service > Lubrication to clear E-119.",
            ("sub", "9.3 Coupling"),
            "Every 4,000 hours inspect the elastomer element through the guard window with the "
            "pump stopped and isolated: replace it if there are cracks, permanent deformation "
            "of more than 2 mm or rubber dust inside the guard. Rubber dust almost always "
            "means misalignment; check alignment (table in section 5.1) before fitting a new "
            "element. Replace the element every 16,000 hours regardless of condition.",
            ("sub", "9.4 Suction strainer"),
            "Clean the basket monthly or when DPT-110 reads more than 0.5 bar (alarm E-114). "
            "Isolate the skid, close V-01, drain the strainer body through its drain plug, "
            "remove the cover (8 × M12, 60 N·m) and lift out the basket. Wash it out with water; "
            "do not enlarge holes or run the pump without the basket. Record what was found in "
            "the basket in the shift log: foreign objects point to a source upstream that "
            "should be found.",
            ("sub", "9.5 Bearing replacement"),
            "Pump bearings are replaced with the rotating assembly removed (back pull-out: the "
            "casing stays on the piping). Heat new bearings on an induction heater to 110 °C; "
            "never use an open flame. The NDE angular contact bearings are mounted back-to-back "
            "(the wide outer ring faces away from each other). Tighten the NDE lock nut to "
            "120 N·m, loosen it, then tighten to 60 N·m and bend a tab of the lock washer into "
            "the nut slot. Shaft end float after assembly: 0.02-0.08 mm.",
            ("sub", "9.6 Mechanical seal replacement"),
            "Replace the seal cartridge when leakage is visible, when LS-108 has raised E-108, "
            "or after the seal has run dry. Always fit a complete new cartridge (part "
            "KX40-SC-2210); seal faces are not repaired on site. You need: the new cartridge "
            "with its centering clips, a new casing gasket KX40-GSK-0412, the O-ring kit "
            "KX40-ORG-0150, a torque wrench 5-200 N·m, 4 mm and 6 mm hex keys and a dial "
            "indicator.",
            (
                "steps",
                [
                    "Isolate and drain the skid as in section 2.1. Disconnect the seal flush line "
                    "at "
                    "the gland flush port.",
                    "Remove the coupling guard and the coupling spacer. Mark the spacer "
                    "orientation.",
                    "Remove the 8 casing bolts (M16) and pull the rotating assembly out of the "
                    "casing "
                    "with the two jacking screws. Set it on a clean bench.",
                    "Hold the shaft with the shaft wrench and remove the impeller nut (M24, right-"
                    "hand thread) and the impeller. Keep the impeller key.",
                    "Fit the yellow centering clips to the OLD cartridge so it is locked and "
                    "centred.",
                    "Loosen the three drive collar set screws of the old cartridge.",
                    "Remove the four gland nuts and pull the old cartridge off the shaft.",
                    "Clean the shaft. It must be free of burrs, fretting or scoring; polish light "
                    "marks with 400 grit emery cloth around the circumference. Check shaft run-out "
                    "at the seal: 0.05 mm maximum.",
                    "Lightly lubricate the shaft with clean water or silicone grease (never "
                    "mineral "
                    "oil on EPDM) and slide the new cartridge on, centering clips still fitted, "
                    "with the flush port at the top.",
                    "Refit the impeller and impeller nut and tighten the nut to 180 N·m. Fit the "
                    "rotating assembly into the casing with a new casing gasket and tighten the "
                    "casing bolts crosswise in two passes to 140 N·m.",
                    "Push the cartridge gland against the seal chamber face so it sits on its "
                    "spigot without tilting.",
                    "Tighten the four gland bolts (M12, A4-70) evenly in a cross pattern, in three "
                    "passes, to 24 N·m.",
                    "Tighten the three drive collar set screws to 9 N·m.",
                    "Remove the centering clips and keep them with the old cartridge. Turn the "
                    "shaft "
                    "by hand: it must turn freely without rubbing.",
                    "Reconnect the flush line, refit the coupling spacer (coupling hub bolts 30 "
                    "N·m), "
                    "check alignment and refit the guard.",
                    "Fill and vent the pump, open V-05 and check that PS-107 shows flush pressure "
                    "before starting. Start as in section 6.2 and check for leakage; a new seal "
                    "may "
                    "weep a few drops during the first 15 minutes while the faces bed in.",
                ],
            ),
            (
                "note",
                "CAUTION: Starting the pump with the centering clips fitted destroys the "
                "new seal within seconds. Count the clips: there are three.",
            ),
            ("sub", "9.7 Torque values"),
            "Table 9-1 lists the torques for the skid. Threads lightly oiled, except stainless "
            "steel gland bolts which are assembled with anti-seize paste.",
            (
                "table",
                (90, 40, 60),
                ("Joint (Table 9-1)", "Thread", "Torque"),
                [
                    ("Seal gland bolts", "M12 A4-70", "24 N·m"),
                    ("Seal drive collar set screws", "M8", "9 N·m"),
                    ("Casing bolts", "M16 8.8", "140 N·m"),
                    ("Impeller nut", "M24", "180 N·m"),
                    ("Bearing housing cover bolts", "M10 8.8", "45 N·m"),
                    ("NDE bearing lock nut", "KM9", "120 N·m seat, then 60 N·m"),
                    ("Coupling hub bolts", "M10 10.9", "30 N·m"),
                    ("Motor foot bolts", "M16 8.8", "160 N·m"),
                    ("Strainer cover bolts", "M12 8.8", "60 N·m"),
                    ("Anchor bolts, base frame", "M20", "220 N·m"),
                ],
            ),
        ],
    ),
    (
        "10 Troubleshooting",
        [
            ("page",),
            "Find the symptom in the left column, check the causes in the order listed (most "
            "likely first), and take the action. If an E-code is shown, see chapter 11 first.",
            (
                "table",
                (50, 65, 75),
                ("Symptom", "Possible cause", "Action"),
                [
                    (
                        "Pump does not deliver",
                        "Not primed; air in suction line",
                        "Vent casing at V-04; check suction joints for air leaks",
                    ),
                    (
                        "Pump does not deliver",
                        "Suction valve V-01 closed",
                        "Open V-01 fully; it must never be used to throttle",
                    ),
                    (
                        "Pump does not deliver",
                        "Wrong rotation",
                        "Check rotation at 5 Hz; swap two motor phases at the drive output",
                    ),
                    ("Flow too low", "Strainer blocked", "Check DPT-110; clean basket (9.4)"),
                    (
                        "Flow too low",
                        "Worn wear rings, clearance > 0.8 mm",
                        "Replace wear rings KX40-WR-0017 and check impeller",
                    ),
                    (
                        "Crackling noise, falling pressure",
                        "Cavitation: NPSH available too low",
                        "Raise suction level, clean strainer, reduce flow below 140 m³/h",
                    ),
                    (
                        "High vibration",
                        "Misalignment after maintenance",
                        "Re-align to 0.05 mm (5.1); check soft foot",
                    ),
                    (
                        "High vibration",
                        "Impeller out of balance or damaged",
                        "Inspect impeller; balance to G6.3 or replace",
                    ),
                    (
                        "High vibration",
                        "Running far from duty point",
                        "Check flow; keep between 25 and 160 m³/h",
                    ),
                    (
                        "Bearing runs hot",
                        "Too much grease after regreasing",
                        "Open relief plug; wait 1 hour; reduce quantity next time",
                    ),
                    ("Bearing runs hot", "Grease old or contaminated", "Replace grease completely"),
                    (
                        "Bearing runs hot",
                        "Pipe strain on pump flanges",
                        "Loosen flange bolts; check flange alignment (chapter 5)",
                    ),
                    (
                        "Seal leaks continuously",
                        "Seal faces damaged by dry running",
                        "Replace seal cartridge (9.6); find cause of dry run",
                    ),
                    (
                        "Seal leaks after fitting",
                        "Gland bolts unevenly tightened",
                        "Re-torque gland bolts in cross pattern",
                    ),
                    (
                        "Seal leaks after fitting",
                        "Centering clips left on",
                        "Stop at once; seal is damaged; replace cartridge",
                    ),
                    (
                        "Motor trips on overload",
                        "Liquid density or viscosity too high",
                        "Check liquid; reduce speed limit in drive",
                    ),
                    (
                        "Motor trips on overload",
                        "Rubbing impeller",
                        "Check end float and wear rings",
                    ),
                    (
                        "Rubber dust in coupling guard",
                        "Misalignment",
                        "Re-align; replace elastomer KX40-CPL-140E",
                    ),
                ],
            ),
        ],
    ),
    (
        "11 Alarm and fault codes",
        [
            ("page",),
            "The SkidGuard controller shows an alarm as an E-code with a text on the HMI and "
            "writes it to the event log with date and time. Alarms (A) warn and let the pump "
            "run; trips (T) stop the pump and need a reset after the cause is removed. Codes "
            "E-101 to E-120 are listed below; drive-internal faults are shown as E-110 with the "
            "drive's own fault number in brackets.",
            (
                "table",
                (18, 12, 70, 90),
                ("Code", "Type", "Meaning", "First action"),
                [
                    (
                        "E-101",
                        "T",
                        "Suction pressure low: PT-101 below 0.3 bar for 5 s",
                        "Check V-01 open, tank level, strainer; restart when > 0.8 bar",
                    ),
                    (
                        "E-102",
                        "T",
                        "Discharge pressure high: PT-102 above 15.5 bar",
                        "Check for closed valve downstream; check set point",
                    ),
                    (
                        "E-103",
                        "T",
                        "Loss of prime: PT-102 below 1.5 bar 30 s after start",
                        "Vent and prime casing (6.2); check suction for air leaks",
                    ),
                    (
                        "E-104",
                        "A/T",
                        "DE bearing temperature high: TT-103 > 85 °C / 95 °C",
                        "Check grease quantity and age; check alignment",
                    ),
                    (
                        "E-105",
                        "A/T",
                        "NDE bearing temperature high: TT-104 > 85 °C / 95 °C",
                        "As E-104; check thrust load and running point",
                    ),
                    (
                        "E-106",
                        "A/T",
                        "Vibration high: VT-105 > 4.5 / 7.1 mm/s RMS",
                        "See troubleshooting, High vibration",
                    ),
                    (
                        "E-107",
                        "T",
                        "Seal flush pressure low: PS-107 sees flush pressure less than "
                        "1.0 bar above seal chamber pressure for 10 s",
                        "Check V-05 open; clean the 3.0 mm flush orifice KX40-ORF-03",
                    ),
                    (
                        "E-108",
                        "A",
                        "Seal leakage: LS-108 detects liquid in the drip pan",
                        "Inspect seal; plan cartridge replacement (9.6)",
                    ),
                    (
                        "E-109",
                        "A/T",
                        "Motor winding temperature high: > 140 °C / 155 °C",
                        "Check motor fan and cooling air; check current",
                    ),
                    (
                        "E-110",
                        "T",
                        "Drive fault (drive fault number in brackets)",
                        "Read drive manual; note number before reset",
                    ),
                    (
                        "E-111",
                        "T",
                        "Dry running: motor power below dry-run curve for 15 s",
                        "Stop; check suction; inspect seal before restart",
                    ),
                    (
                        "E-112",
                        "A",
                        "Flow below minimum: FT-106 < 25 m³/h for 60 s",
                        "Open discharge or recirculation valve",
                    ),
                    (
                        "E-113",
                        "A",
                        "Flow above runout: FT-106 > 165 m³/h for 30 s",
                        "Throttle V-02; check for a burst downstream",
                    ),
                    (
                        "E-114",
                        "A/T",
                        "Strainer blocked: DPT-110 > 0.5 bar / 0.8 bar",
                        "Switch to standby pump; clean basket (9.4)",
                    ),
                    ("E-115", "T", "Emergency stop pressed", "Find reason; release button; reset"),
                    (
                        "E-116",
                        "T",
                        "Coupling guard open: ZS-111 interlock",
                        "Close and bolt the guard; check switch",
                    ),
                    (
                        "E-117",
                        "A",
                        "Sensor signal fault: 4-20 mA below 3.6 or above 21 mA",
                        "Check wiring and transmitter; HMI shows which tag",
                    ),
                    (
                        "E-118",
                        "A",
                        "Too many starts: more than 6 starts in 60 minutes",
                        "Check demand control and pressure switch hysteresis",
                    ),
                    (
                        "E-119",
                        "A",
                        "Lubrication due: grease interval reached on hour counter",
                        "Regrease (9.2); reset counter in Service > Lubrication",
                    ),
                    (
                        "E-120",
                        "A",
                        "Controller battery low; clock may be lost at power off",
                        "Replace battery KX40-BAT-3V with power on",
                    ),
                ],
            ),
            "Test the protective trips every 6 months: simulate low flush pressure by closing "
            "V-05 (E-107 within 10 s), pour water into the drip pan (E-108), press the emergency "
            "stop (E-115) and open the guard (E-116). Record the results.",
        ],
    ),
    (
        "12 Spare parts",
        [
            ("page",),
            "Order parts from Kestrel Fluid Systems service quoting the skid serial number from "
            "the nameplate on the base frame. Recommended spares for two years of operation are "
            "marked R; keep them on site.",
            (
                "table",
                (45, 100, 15, 30),
                ("Part number", "Description", "Qty", "Spare"),
                [
                    ("KX40-SC-2210", "Mechanical seal cartridge, SiC/carbon/EPDM", "1", "R"),
                    ("KX40-GSK-0412", "Casing gasket, aramid fibre", "1", "R"),
                    ("KX40-ORG-0150", "O-ring kit, rotating assembly, EPDM", "1", "R"),
                    ("KX40-BRG-6309", "Bearing 6309 C3, pump DE", "1", "R"),
                    ("KX40-BRG-7309P", "Bearing pair 7309 BECBM, pump NDE", "1", "R"),
                    ("KX40-LN-KM9", "Lock nut KM9 with lock washer MB9", "1", ""),
                    ("KX40-IMP-285", "Impeller, CF8M, 285 mm", "1", ""),
                    ("KX40-WR-0017", "Wear ring set, casing and cover", "1", ""),
                    ("KX40-KEY-0810", "Impeller key 8 × 7 × 40", "1", ""),
                    ("KX40-CPL-140E", "Coupling elastomer element", "1", "R"),
                    ("KX40-STR-125", "Strainer basket, 3 mm perforation", "1", ""),
                    ("KX40-STR-GSK", "Strainer cover gasket", "2", "R"),
                    ("KX40-ORF-03", "Seal flush orifice, 3.0 mm, stainless", "1", "R"),
                    ("KX40-GR-KL2", "Grease KL-2, 400 g cartridge", "4", "R"),
                    ("KX40-PT-016", "Pressure transmitter 0-16 bar, 4-20 mA", "1", ""),
                    ("KX40-TT-100", "Pt100 bearing sensor with cable", "1", ""),
                    ("KX40-VT-01", "Vibration transmitter 0-25 mm/s", "1", ""),
                    ("KX40-PS-107", "Seal flush pressure switch", "1", ""),
                    ("KX40-BAT-3V", "Controller battery, lithium 3 V", "1", "R"),
                    ("KX40-CLIP-3", "Seal centering clips, set of 3", "1", ""),
                ],
            ),
            "Use only genuine parts for the pressure-containing parts, the seal and the bearings. "
            "Parts that look the same can differ in material, clearance or bearing internal "
            "clearance (C3), and the wrong one can fail within days.",
        ],
    ),
    (
        "13 Service and records",
        [
            "Keep a maintenance record for each skid: date, operating hours, work done, parts "
            "used with part numbers, torques applied, alignment readings and the name of the "
            "person who did the work. The SkidGuard event log keeps the last 2,000 alarms; "
            "export it to a USB stick from menu Service > Export before replacing the controller "
            "battery.",
            "Kestrel Fluid Systems publishes service bulletins (SB-yyyy-mm) when a value or a "
            "procedure in this manual changes. A bulletin names the sections it supersedes. "
            "File each bulletin behind this page and mark the changed values in the text.",
        ],
    ),
    (
        "Appendix A Factory performance test",
        [
            ("page",),
            "Every KX-40 is run on the Kestrel test bench before shipping, with water at 20 °C, "
            "at 1480 rpm, to ISO 9906 grade 2B. The values below are typical; the test sheet "
            "for your serial number is in the document pocket of the skid panel. Compare them "
            "with site readings to judge wear: a head more than 5 % below the curve at the same "
            "flow and speed means the wear rings or the impeller need attention.",
            (
                "table",
                (38, 38, 38, 38, 38),
                ("Flow m³/h", "Head m", "Power kW", "Efficiency %", "NPSHr m"),
                [
                    ("0", "58.0", "11.9", "0", "-"),
                    ("40", "57.1", "17.8", "35", "1.9"),
                    ("80", "54.2", "23.4", "50", "2.3"),
                    ("100", "51.6", "25.6", "55", "2.7"),
                    ("120", "48.0", "27.9", "56", "3.2"),
                    ("140", "43.4", "30.6", "54", "4.0"),
                    ("160", "37.5", "33.1", "49", "5.1"),
                ],
            ),
            "Power is measured at the pump shaft. With the 37 kW motor the skid is non-"
            "overloading over the whole curve for liquids up to a density of 1,100 kg/m³.",
            ("sub", "A.1 Vibration acceptance"),
            "At the factory test the overall vibration velocity on both bearing housings must "
            "be below 2.3 mm/s RMS in all three directions (horizontal, vertical, axial). On "
            "site, a new installation should read below 2.8 mm/s; readings that rise by more "
            "than 1 mm/s between two monthly checks are worth a look even below the alarm "
            "level. Typical causes in the order found in the field: misalignment after "
            "maintenance, a loose motor foot, a worn coupling element, cavitation, a damaged "
            "impeller, worn bearings.",
        ],
    ),
    (
        "Appendix B Glossary",
        [
            (
                "list",
                [
                    "BEP: best efficiency point, 120 m³/h for the 285 mm impeller.",
                    "DE / NDE: drive end (coupling side) / non-drive end of the pump or motor.",
                    "End float: axial movement of the shaft in its bearings.",
                    "NPSH: net positive suction head. NPSH available must exceed NPSH required by "
                    "at least 1 m, or the pump cavitates.",
                    "Plan 11: seal flush from pump discharge through an orifice into the seal "
                    "chamber (API 682 piping plan).",
                    "Runout: the highest flow on the curve, 160 m³/h for the KX-40.",
                    "Soft foot: a motor foot that does not sit flat; tightening it bends the "
                    "frame.",
                    "STO: safe torque off, the drive input the emergency stop acts on.",
                ],
            ),
        ],
    ),
]


class ManualPDF(FPDF):
    """A4 manual layout: running header with the document number, page footer."""

    def header(self) -> None:
        self.set_font("Helvetica", "I", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 6, HEADER, new_x="LMARGIN", new_y="NEXT", align="C")
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(4)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")


def build(sections: list[tuple[str, list[Block]]]) -> bytes:
    """Typeset the manual and return the PDF bytes."""
    pdf = ManualPDF(format="A4")
    pdf.set_title(TITLE)
    pdf.set_author("Kestrel Fluid Systems (fictional)")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(18, 14, 18)
    _cover(pdf)
    for heading, blocks in sections:
        if blocks and blocks[0] == ("page",):
            pdf.add_page()  # the chapter opens a page; its heading goes on top
            blocks = blocks[1:]
        elif pdf.get_y() > pdf.h - 60:
            pdf.add_page()  # never leave a chapter heading alone at the bottom of a page
        _heading(pdf, heading, size=14)
        for block in blocks:
            _block(pdf, block)
    return bytes(pdf.output())


def _cover(pdf: FPDF) -> None:
    pdf.add_page()
    pdf.ln(40)
    pdf.set_font("Helvetica", "B", 22)
    pdf.multi_cell(0, 11, "Kestrel KX-40\nCentrifugal Pump Skid", align="C")
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 14)
    pdf.multi_cell(0, 8, "Operation and Maintenance Manual", align="C")
    pdf.ln(20)
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(
        0,
        6,
        "Document KFS-OM-KX40, Revision C, November 2025\n"
        "Applies to serial numbers KX40-2101 and later\n\n"
        "Kestrel Fluid Systems - Service Department\n"
        "(fictional company and product, written for the edgerag demo corpus)",
        align="C",
    )
    pdf.add_page()


def _heading(pdf: FPDF, text: str, size: int) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", size)
    pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _paragraph(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "", 10.5)
    pdf.multi_cell(0, 5.4, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _block(pdf: FPDF, block: Block) -> None:
    if isinstance(block, str):
        _paragraph(pdf, block)
        return
    kind = block[0]
    if kind == "page":
        pdf.add_page()
    elif kind == "sub":
        _heading(pdf, block[1], size=11)
    elif kind in ("list", "steps"):
        pdf.set_font("Helvetica", "", 10.5)
        for number, item in enumerate(block[1], start=1):
            marker = f"{number}." if kind == "steps" else "-"
            pdf.cell(8, 5.4, marker)
            pdf.multi_cell(0, 5.4, item, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        pdf.ln(1.5)
    elif kind == "note":
        pdf.set_font("Helvetica", "B", 10)
        pdf.multi_cell(0, 5, block[1], border=1, padding=2, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    elif kind == "table":
        _table(pdf, *block[1:])
    else:
        raise ValueError(f"unknown block kind {kind!r}")


def _table(
    pdf: FPDF, widths: tuple[int, ...], header: tuple[str, ...], rows: list[tuple[str, ...]]
) -> None:
    pdf.set_font("Helvetica", "", 9)
    with pdf.table(
        col_widths=widths,
        width=pdf.epw,  # widths are relative; the table fills the text width
        line_height=4.6,
        text_align="LEFT",
        headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
        first_row_as_headings=True,
        repeat_headings=1,
    ) as table:
        for values in (header, *rows):
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.ln(3)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = build(MANUAL)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    logger.info("wrote %s (%d bytes)", OUT, len(data))


if __name__ == "__main__":
    main()
